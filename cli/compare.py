"""`mpts-fast compare`: several strategies on one data set, summary.json (AUBC, per-round mean ± std) and a plot."""
from __future__ import annotations

from pathlib import Path

import click

from mpts_fast.cli.al_options import experiment_options, run_config
from mpts_fast.cli.run import execute


@click.command()
@click.option("--strategies", "-s", default="random,entropy,mpts", show_default=True,
              help="Comma-separated strategy names, or 'all'.")
@experiment_options
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Output directory; default runs/compare-<dataset>.")
@click.option("--resume", is_flag=True, help="Continue interrupted runs; finished strategies are not rerun.")
@click.option("--overwrite", is_flag=True, help="Start every strategy afresh even if --out holds results.")
def compare(strategies: str, out: str | None, resume: bool, overwrite: bool, **kw) -> None:
    """Run several strategies with the same seeds and compare their learning curves."""
    from mpts_fast.plots import plot_comparison
    from mpts_fast.results import RESULTS_FILE, load_json, summarize_runs, write_json_atomic
    from mpts_fast.strategies import strategy_names

    names = strategy_names() if strategies.strip() == "all" else [s.strip() for s in strategies.split(",") if s.strip()]
    unknown = [s for s in names if s not in strategy_names()]
    if unknown or not names:
        raise click.BadParameter(f"unknown {unknown or 'empty list'}; expected names from {', '.join(strategy_names())} "
                                 f"or 'all'", param_hint="--strategies")
    out_dir = Path(out or f"runs/compare-{kw['dataset']}")
    summary = {"dataset": kw["dataset"], "strategies": {}}
    for name in names:
        sub = out_dir / name
        saved = load_json(sub / RESULTS_FILE) if resume and (sub / RESULTS_FILE).exists() else None
        done = saved is not None and _complete(saved, kw["repeats"])
        if not kw["quiet"]:
            click.echo(f"== {name}" + (" (finished earlier)" if done else ""))
        results = saved if done else execute(run_config(name, kw, prefix_required=True), sub, kw, saved is not None,
                                             overwrite)
        summary["strategies"][name] = summarize_runs(results)
        write_json_atomic(out_dir / "summary.json", summary)
    png = plot_comparison(summary, out_dir / "comparison.png", title=f"{kw['dataset']}, {kw['repeats']} repeats")
    click.echo(f"{'strategy':<18} {'AUBC':>14}  final accuracy")
    for name, s in sorted(summary["strategies"].items(), key=lambda kv: -kv[1]["aubc_mean"]):
        click.echo(f"{name:<18} {s['aubc_mean']:.3f} ± {s['aubc_std']:.3f}  {s['accuracy_mean'][-1]:.3f} ± "
                   f"{s['accuracy_std'][-1]:.3f}")
    click.echo(f"summary: {out_dir / 'summary.json'}\nplot: {png}")


def _complete(results: dict, repeats: int) -> bool:
    runs = results.get("runs", [])
    return len(runs) >= repeats and all(r.get("complete") for r in runs[:repeats])
