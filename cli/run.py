"""`mpts-fast run`: one strategy on one data set, results.json after every round, a learning-curve PNG at the end."""
from __future__ import annotations

from pathlib import Path

import click

from mpts_fast.cli.al_options import experiment_options, round_printer, run_config
from mpts_fast.strategies import strategy_names


def execute(cfg, out: Path, kw: dict, resume: bool, overwrite: bool = False) -> dict:
    """Run one configuration with friendly errors; Ctrl-C keeps every finished round and says how to resume."""
    from mpts_fast.loop import ActiveLearningRun

    try:
        run = ActiveLearningRun(cfg, out, device=kw["device"], data_dir=kw["data_dir"], progress=not kw["quiet"],
                                on_round=round_printer(kw["quiet"]))
        return run.run(resume=resume, overwrite=overwrite)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished rounds are saved in {out / 'results.json'}; rerun the same command with "
                   f"--resume to continue", err=True)
        raise SystemExit(130) from None


@click.command()
@click.option("--strategy", "-s", default="mpts", show_default=True,
              help=f"Query strategy: {', '.join(strategy_names())}.")
@experiment_options
@click.option("--out", "-o", type=click.Path(file_okay=False), help="Output directory; default runs/<dataset>-<strategy>.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last finished round.")
@click.option("--overwrite", is_flag=True, help="Start afresh even if --out holds results.")
def run(strategy: str, out: str | None, resume: bool, overwrite: bool, **kw) -> None:
    """Run active learning with one strategy: with no options, MPTS on the embedded digits data set."""
    from mpts_fast.plots import plot_learning_curve
    from mpts_fast.results import aubc

    out_dir = Path(out or f"runs/{kw['dataset']}-{strategy}")
    results = execute(run_config(strategy, kw), out_dir, kw, resume, overwrite)
    png = plot_learning_curve(results, out_dir / "learning_curve.png")
    for r in results["runs"]:
        n = [rd["n_labeled"] for rd in r["rounds"]]
        a = [rd["test_accuracy"] for rd in r["rounds"]]
        click.echo(f"seed {r['seed']}: final accuracy {a[-1]:.3f} with {n[-1]} labels, AUBC {aubc(n, a):.3f}")
    click.echo(f"results: {out_dir / 'results.json'}\nplot: {png}")
