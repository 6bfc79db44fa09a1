"""`mpts-fast compare`: several strategies on one data set, summary.json (AUBC, per-round mean ± sample std, the config,
each seed's AUBC), results.csv and a plot. Exit codes as `run`: 2 usage, 1 runtime, 130 Ctrl-C."""
from __future__ import annotations

from pathlib import Path

import click

from mpts_fast.cli.al_options import (check_applicable, experiment_options, given, merge_saved, run_config,
                                      run_setting_fields)
from mpts_fast.cli.run import damaged_message, execute

SUMMARY_FILE = "summary.json"
# settings recorded per strategy (None where the strategy does not use them), not in the shared config
_PER_STRATEGY = ("strategy", "strategy_options", *run_setting_fields())


def _strategy_list(text: str) -> list[str]:
    from mpts_fast.cli.names import resolve_strategy
    from mpts_fast.strategies import strategy_names

    if text.strip().lower() == "all":
        return strategy_names()
    names = [resolve_strategy(s, "'--strategies'") for s in text.split(",") if s.strip()]
    if not names:
        raise click.BadParameter("empty list; expected comma-separated strategy names or 'all'",
                                 param_hint="'--strategies'")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise click.BadParameter(f"{', '.join(duplicated)} listed twice", param_hint="'--strategies'")
    return names


def _summary_remedy() -> str:
    return ("Delete it (--resume then reads the settings from the <strategy>/results.json files; name --strategies "
            "if a strategy never started), or start every strategy again with --overwrite")


def _strategy_remedy(sub: Path) -> str:
    return (f"Delete {sub} to run {sub.name} again from its start (the other strategies keep their results), start "
            f"every strategy again with --overwrite, or restore the file from a copy")


def _read_saved(path: Path) -> dict:
    """summary.json or <strategy>/results.json of an earlier compare, checked; a ClickException naming the file, what
    is wrong and the way out when it is damaged or incomplete (instead of a traceback)."""
    from mpts_fast.results import DamagedResultsError, load_json, load_results

    try:
        if path.name != SUMMARY_FILE:
            return load_results(path)
        summary = load_json(path)
        if not isinstance(summary, dict) or not all(isinstance(summary.get(k, {}), dict)
                                                    for k in ("config", "strategies")):
            raise DamagedResultsError(path, "it is valid JSON but not a compare summary (an object with 'config' and "
                                            "'strategies'), so it was edited by hand or written by another program")
        return summary
    except DamagedResultsError as e:
        remedy = _summary_remedy() if path.name == SUMMARY_FILE else _strategy_remedy(path.parent)
        raise click.ClickException(f"cannot resume: {damaged_message(e, remedy)}") from None
    except OSError as e:
        raise click.ClickException(f"cannot resume: cannot read {path}: {e.strerror or e}") from None


def _saved_compare(out_dir: Path) -> tuple[list[str], dict]:
    """(strategies, shared config) of an earlier compare in out_dir: from summary.json, else its results.json files."""
    from mpts_fast.results import RESULTS_FILE

    summary_path = out_dir / SUMMARY_FILE
    if summary_path.exists():
        summary = _read_saved(summary_path)
        if summary.get("config"):
            config = dict(summary["config"])
            return config.pop("strategies", list(summary.get("strategies", {}))), config
    found = sorted(p.parent.name for p in out_dir.glob(f"*/{RESULTS_FILE}"))
    if not found:
        raise click.UsageError(f"nothing to resume: {out_dir} holds no {SUMMARY_FILE} and no "
                               f"<strategy>/{RESULTS_FILE}; run without --resume to start")
    config = _read_saved(out_dir / found[0] / RESULTS_FILE)["config"]
    return found, {k: v for k, v in config.items() if k not in _PER_STRATEGY}


def _invocation_config(configs: dict, names: list[str]) -> dict:
    """summary.json's config, written before any training so that --resume knows the strategies and settings even
    when the first strategy is interrupted: the shared settings, each strategy-specific one from the first strategy
    that uses it (None when none does), and every strategy's options."""
    from mpts_fast.strategies import get_strategy

    def users(field: str) -> list[str]:
        return [n for n in names if any(o.key == field for o in get_strategy(n).declared_options() if o.to == "run")]

    config = {k: v for k, v in configs[names[0]].to_json().items() if k not in _PER_STRATEGY}
    for field in _PER_STRATEGY[2:]:
        used_by = users(field)
        config[field] = getattr(configs[used_by[0]], field) if used_by else None
    return {**config, "strategy_options": {n: configs[n].strategy_options for n in names}, "strategies": names}


@click.command()
@click.option("--strategies", "-s", default="random,entropy,mpts", show_default=True,
              help="Comma-separated strategy names (case-insensitive), or 'all'.")
@experiment_options
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Output directory; default runs/compare-<dataset>.")
@click.option("--resume", is_flag=True, help="Continue interrupted runs with their saved settings; finished strategies "
                                             "are not rerun.")
@click.option("--overwrite", is_flag=True, help="Start every strategy afresh even if --out holds results.")
@click.option("--curve", type=click.Choice(["task", "selection"]),
              help="The curve the summary, table and plot show: 'task' (the task models'; the default with --evaluate "
                   "task) or 'selection' (each strategy's selection model: its own where it trains one, else the task "
                   "model; the default with --evaluate selection).")
@click.pass_context
def compare(ctx: click.Context, strategies: str, out: str | None, resume: bool, overwrite: bool, curve: str | None,
            **kw) -> None:
    """Run several strategies with the same seeds and compare their learning curves."""
    from mpts_fast.cli.names import dataset_label, resolve_dataset
    from mpts_fast.distributed import is_primary
    from mpts_fast.plots import counted, plot_comparison
    from mpts_fast.time_split import time_split, time_table
    from mpts_fast.results import (CSV_FILE, RESULTS_FILE, STD_NOTE, OutputLockedError, UnwritableOutputError,
                                   format_mean_std, output_lock, summarize_runs, write_json_atomic, write_results_csv)

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    kw["dataset"] = resolve_dataset(kw["dataset"])
    names = _strategy_list(strategies)
    out_dir = Path(out or f"runs/compare-{dataset_label(kw['dataset'])}")
    if resume:
        saved_names, saved_config = _saved_compare(out_dir)
        if not given(ctx, "strategies"):
            names = saved_names
        kw = merge_saved(ctx, kw, saved_config, out_dir / SUMMARY_FILE)
    check_applicable(ctx, names)
    if curve == "task" and kw["evaluate"] == "selection":
        raise click.BadParameter("with --evaluate selection no task model is trained (each strategy's own model scores "
                                 "the curve); leave --curve out or pass --curve selection", param_hint="'--curve'")
    curve = curve or kw["evaluate"]
    configs = {}
    for name in names:  # every strategy's settings are checked before the first one trains
        sub_kw = kw
        saved_path = out_dir / name / RESULTS_FILE
        if resume and saved_path.exists():
            sub_kw = merge_saved(ctx, kw, _read_saved(saved_path)["config"], saved_path)
        configs[name] = run_config(name, sub_kw, prefix_required=True, in_run=names)
    summary = {"dataset": kw["dataset"], "std": STD_NOTE, "config": _invocation_config(configs, names),
               "strategies": {}}
    try:  # held until the command ends: a second compare on the same --out refuses instead of interleaving
        if is_primary():  # torchrun: rank 0 holds it (the other ranks would find it taken)
            ctx.with_resource(output_lock(out_dir))
    except OutputLockedError as e:
        raise click.ClickException(f"{e.path} is in use by another mpts-fast process ({e.holder}); wait for it to "
                                   f"finish, or choose another --out") from None
    except UnwritableOutputError as e:
        raise click.ClickException(f"{e}; choose another --out") from None
    if resume and (out_dir / SUMMARY_FILE).exists():  # entries of finished strategies stay until they are redone
        earlier = _read_saved(out_dir / SUMMARY_FILE).get("strategies", {})
        summary["strategies"] = {n: earlier[n] for n in names if n in earlier}
    write_json_atomic(out_dir / SUMMARY_FILE, summary)
    everything = []
    for name in names:
        sub = out_dir / name
        saved = _read_saved(sub / RESULTS_FILE) if resume and (sub / RESULTS_FILE).exists() else None
        repeats = configs[name].repeats
        done = saved is not None and _complete(saved, repeats)
        if not kw["quiet"]:
            click.echo(f"== {name}" + (" (finished earlier)" if done else ""))
        results = saved if done else execute(configs[name], sub, kw, saved is not None, overwrite, command="compare",
                                             resume_out=out_dir, damaged_remedy=_strategy_remedy(sub))
        # the shared settings as resolved (the data set's defaults filled in)
        summary["config"].update({k: v for k, v in results["config"].items() if k not in _PER_STRATEGY})
        summary["config"].update({k: results["config"][k] for k in _PER_STRATEGY[2:]
                                  if summary["config"].get(k) is None and results["config"].get(k) is not None})
        summary["strategies"][name] = {"config": {k: results["config"].get(k) for k in _PER_STRATEGY[1:]},
                                       **summarize_runs(results, curve), "seconds": time_split(results)}
        everything.append(results)
        write_json_atomic(out_dir / SUMMARY_FILE, summary)
    if not is_primary():  # torchrun: rank 0 writes the CSV and the plot and prints the table
        return
    csv = write_results_csv(out_dir / CSV_FILE, everything)
    seeds = sorted({s["repeats"] for s in summary["strategies"].values()})
    png = plot_comparison(summary, out_dir / "comparison.png",
                          title=f"{dataset_label(kw['dataset'])}, {counted(seeds, 'seed')}")
    click.echo(f"{'strategy':<18} {'AUBC':>15}  {'final accuracy':>15}  (mean ± sample std over seeds; the {curve} "
               f"models' curve)")
    for name, s in sorted(summary["strategies"].items(), key=lambda kv: -kv[1]["aubc_mean"]):
        final_std = None if s["accuracy_std"] is None else s["accuracy_std"][-1]
        click.echo(f"{name:<18} {format_mean_std(s['aubc_mean'], s['aubc_std']):>15}  "
                   f"{format_mean_std(s['accuracy_mean'][-1], final_std):>15}")
    click.echo("\n".join(time_table({n: s["seconds"] for n, s in summary["strategies"].items() if "seconds" in s})))
    click.echo(f"summary: {out_dir / SUMMARY_FILE}\nper seed and round: {csv}\nplot: {png}")


def _complete(results: dict, repeats: int) -> bool:
    runs = results.get("runs", [])
    return len(runs) >= repeats and all(r.get("complete") for r in runs[:repeats])
