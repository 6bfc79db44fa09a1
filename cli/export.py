"""`mpts-fast export DIR --csv`: the results.json of a run (DIR/results.json) or of a compare (DIR/*/results.json) as
one CSV row per seed × round, for pandas.read_csv, R or a spreadsheet."""
from __future__ import annotations

from pathlib import Path

import click


def _results_files(directory: Path) -> list[Path]:
    from mpts_fast.results import RESULTS_FILE

    if (directory / RESULTS_FILE).exists():
        return [directory / RESULTS_FILE]
    return sorted(directory.glob(f"*/{RESULTS_FILE}"))


@click.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--csv", "as_csv", is_flag=True, default=True, show_default=True,
              help="Write CSV (the one format so far): dataset, strategy, seed, round, n_labeled, the round's metrics "
                   "and timings, n_selected.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write; default DIRECTORY/results.csv.")
def export(directory: Path, as_csv: bool, output: Path | None) -> None:
    """Export the results in DIRECTORY (from `run` or `compare`) as one table: a row per seed and round."""
    from mpts_fast.cli.run import damaged_message
    from mpts_fast.results import (CSV_FILE, RESULTS_FILE, DamagedResultsError, load_results, results_rows,
                                   write_error_reason, write_results_csv)

    files = _results_files(directory)
    if not files:
        raise click.UsageError(f"{directory} holds no {RESULTS_FILE} (nor <strategy>/{RESULTS_FILE}); pass the --out "
                               f"directory of `mpts-fast run` or `mpts-fast compare`")
    try:
        results = [load_results(f) for f in files]
    except DamagedResultsError as e:
        remedy = "Restore it from a copy, or run the command that wrote it again"
        raise click.ClickException(f"cannot export: {damaged_message(e, remedy)}") from None
    except OSError as e:
        raise click.ClickException(f"cannot export: cannot read {e.filename}: {e.strerror or e}") from None
    path = output or directory / CSV_FILE
    try:
        write_results_csv(path, results)
    except OSError as e:
        raise click.ClickException(f"cannot write {path}: {write_error_reason(e, path)}; pass --output with a place "
                                   f"you can write to") from None
    rows = sum(len(results_rows(r)) for r in results)
    click.echo(f"{path}: {rows} rows ({len(files)} results file{'s' if len(files) > 1 else ''})")
