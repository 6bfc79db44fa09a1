"""`mpts-fast datasets`: every registered data set, its size and default AL settings, and what is present locally."""
from __future__ import annotations

from pathlib import Path

import click


def _fmt_int(n: int | None) -> str:
    return "?" if n is None else f"{n:,}"


def _short(path: Path, root: Path) -> str:
    """`path` relative to the data directory when inside it (the header line names the directory)."""
    try:
        return str(Path(path).relative_to(root)) + "/"
    except ValueError:
        return str(path)


def rows(data_dir: Path) -> list[dict[str, str]]:
    """One display row per registered data set (bundled ones are loaded: they are small and in memory already)."""
    from mpts_fast import data

    out = []
    for name in data.dataset_names():
        info = data.get_info(name)
        where = data.availability(name, data_dir)
        classes, sizes, defaults = info.num_classes, info.sizes, info.defaults
        if info.bundled:
            ds = data.load_dataset(name, data_dir, download=False, progress=False)
            classes, sizes, defaults = ds.num_classes, (len(ds.y_train), len(ds.y_test)), ds.defaults
        place = _short(where.directory, data_dir) if where.directory is not None else ""
        if where.state == "missing":
            local = f"missing in {place}: {', '.join(where.missing)}"
        elif where.state == "present":
            local = f"present in {place}"
        elif where.state == "generated":
            local = "generated on first load"
        else:
            local = where.state
        d = defaults
        out.append({
            "name": name,
            "task": info.task,
            "classes": "-" if info.task == "regression" else (str(classes) if classes is not None else "?"),
            "pool / test": "? / ?" if sizes is None else f"{_fmt_int(sizes[0])} / {_fmt_int(sizes[1])}",
            "initial+budget x rounds": "?" if d is None else f"{d.initial}+{d.budget} x {d.rounds}",
            "model": "?" if d is None else d.model + (" (pre-trained)" if d.pretrained else ""),
            "lr / epochs": "?" if d is None else f"{d.lr:g} / {d.epochs}",
            "reproduces the paper": "--recipe paper" if d is not None and d.paper else "-",
            "local": local,
        })
    return out


def render(table: list[dict[str, str]]) -> str:
    columns = list(table[0])
    widths = {c: max(len(c), *(len(r[c]) for r in table)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in columns))
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in table]
    return "\n".join(lines)


@click.command()
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where downloaded data sets live (default: $MPTS_FAST_DATA or ~/.cache/mpts-fast/data).")
@click.option("--download", "to_download", multiple=True, metavar="NAME",
              help="Fetch NAME's files into the data directory first (checksummed; repeat for several).")
def datasets(data_dir: Path | None, to_download: tuple[str, ...]) -> None:
    """List the data sets: task, classes, sizes, default AL settings and local availability."""
    from mpts_fast import data

    from mpts_fast.cli.names import resolve_name

    root = data_dir if data_dir is not None else data.default_data_dir()
    names = [resolve_name(n, data.dataset_names(), what="data set", param_hint="'--download'") for n in to_download]
    for name in names:
        try:
            ds = data.load_dataset(name, root, download=True, progress=True)
        except (ValueError, OSError, ImportError) as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"{name}: ready ({len(ds.y_train):,} pool / {len(ds.y_test):,} test)")
    click.echo(f"data directory: {root} (paths below are relative to it)\n")
    click.echo(render(rows(root)))
    click.echo("\nDefaults are the paper's Table 1 for the image and OpenML sets and ours elsewhere; `mpts-fast run` "
               "options override them.\nThe default training recipe ('fit') trains each model until it fits its "
               "labels; `--recipe paper` trains the listed epochs at the listed lr, as the paper did (docs/mpts.md)."
               "\nMissing files: place them in the directory shown (docs/datasets.md), or "
               "load the set with downloads enabled (mpts-fast datasets --download NAME).")
