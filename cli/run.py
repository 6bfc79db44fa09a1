"""`mpts-fast run`: one strategy on one data set, results.json after every round, a learning-curve PNG and results.csv
at the end. Exit codes: 2 for a usage error (bad or conflicting options), 1 for a runtime error, 130 on Ctrl-C."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from mpts_fast.cli.al_options import (check_applicable, constructor_flags, describe, experiment_options, given,
                                      merge_saved, round_printer, run_config)
from mpts_fast.strategies import strategy_names

_OPTION_OF_FIELD = {"strategy_options": " / ".join(["--option", *constructor_flags()])}


def _option(field: str) -> str:
    return _OPTION_OF_FIELD.get(field, "--" + field.replace("_", "-"))


RESUME_REMEDY = "Start again over it with --overwrite, choose another --out, or restore the file from a copy"


def damaged_message(e, remedy: str = RESUME_REMEDY) -> str:
    """A DamagedResultsError in the command line's words: the file, what is wrong, and `remedy` (naming options this
    command has, where the Python API's message names its arguments)."""
    return f"{e.path} is damaged: {e.problem}. {remedy}"


def resume_command(command: str, out: Path, kw: dict) -> str:
    """The command that continues an interrupted `run` / `compare` in `out`: --out and --resume, plus the settings
    results.json does not hold (--data-dir, a --device other than auto), so that it works as printed."""
    words = ["mpts-fast", command, "--out", str(out), "--resume"]
    if kw.get("data_dir"):
        words += ["--data-dir", str(kw["data_dir"])]
    if kw.get("device") not in (None, "auto"):
        words += ["--device", str(kw["device"])]
    if kw.get("lockstep") is False:  # the same arithmetic as the rounds already run
        words += ["--no-lockstep"]
    return shlex.join(words)


def execute(cfg, out: Path, kw: dict, resume: bool, overwrite: bool = False, *, command: str = "run",
            resume_out: Path | None = None, damaged_remedy: str = RESUME_REMEDY) -> dict:
    """Run one configuration, turning the engine's Python-worded errors into the CLI's (option names, exit codes);
    Ctrl-C keeps every finished round, says how to resume (`command` on `resume_out`, default `out`) and exits
    130."""
    from mpts_fast.loop import ActiveLearningRun, ConfigError, ResumeMismatchError
    from mpts_fast.results import DamagedResultsError, OutputLockedError, UnwritableOutputError

    try:
        try:
            run = ActiveLearningRun(cfg, out, device=kw["device"], data_dir=kw["data_dir"], progress=not kw["quiet"],
                                    on_round=round_printer(kw["quiet"]), jobs=kw.get("jobs", 1),
                                    lockstep=kw.get("lockstep", True))
            if not kw["quiet"]:
                click.echo(describe(run.cfg, str(run.device)))
            return run.run(resume=resume, overwrite=overwrite)
        except ConfigError as e:
            raise click.BadParameter(str(e).partition(": ")[2] or str(e), param_hint=f"'{_option(e.field)}'") from None
        except ResumeMismatchError as e:
            listed = "; ".join(f"{_option(k)}: saved {a!r}, given {b!r}" for k, (a, b) in e.differences.items())
            raise click.UsageError(f"cannot resume {e.path}: it was written with other settings ({listed}); "
                                   f"leave these options out to resume with the saved settings, or use another "
                                   f"--out") from None
        except FileExistsError:
            raise click.UsageError(f"{out / 'results.json'} exists; pass --resume to continue it, --overwrite to start "
                                   f"again, or choose another --out") from None
        except DamagedResultsError as e:
            raise click.ClickException(f"cannot resume: {damaged_message(e, damaged_remedy)}") from None
        except OutputLockedError as e:
            raise click.ClickException(f"{e.path} is in use by another mpts-fast process ({e.holder}); wait for it "
                                       f"to finish, or choose another --out") from None
        except UnwritableOutputError as e:
            raise click.ClickException(f"{e}; choose another --out") from None
        except (ValueError, FileNotFoundError) as e:
            raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:
        from mpts_fast import distributed

        if distributed.is_primary():  # under torchrun every rank is interrupted: one hint, rank 0's
            click.echo(f"\ninterrupted: finished rounds are saved in {out / 'results.json'}; to continue, run\n"
                       f"  {resume_command(command, resume_out or out, kw)}", err=True)
        raise click.exceptions.Exit(130) from None


def _load_saved(out_dir: Path) -> dict:
    """The config of <out>/results.json for --resume; a UsageError when there is nothing to resume, a ClickException
    naming the file and the way out when it is damaged or incomplete (before any option is compared with it)."""
    from mpts_fast.results import RESULTS_FILE, DamagedResultsError, load_results

    path = out_dir / RESULTS_FILE
    if not path.exists():
        raise click.UsageError(f"nothing to resume: {out_dir} holds no {RESULTS_FILE}; run without --resume to start")
    try:
        return load_results(path)["config"]
    except DamagedResultsError as e:
        raise click.ClickException(f"cannot resume: {damaged_message(e)}") from None
    except OSError as e:
        raise click.ClickException(f"cannot resume: cannot read {path}: {e.strerror or e}") from None


def seeds_line(summary: dict) -> str:
    """'mean over 3 seeds (sample std): final accuracy 0.912 ± 0.010, AUBC 0.850 ± 0.012'."""
    from mpts_fast.results import format_mean_std

    final_std = None if summary["accuracy_std"] is None else summary["accuracy_std"][-1]
    return (f"mean over {summary['repeats']} seeds (± sample std): final accuracy "
            f"{format_mean_std(summary['accuracy_mean'][-1], final_std)}, AUBC "
            f"{format_mean_std(summary['aubc_mean'], summary['aubc_std'])}")


@click.command()
@click.option("--strategy", "-s", default="mpts", show_default=True,
              help=f"Query strategy (case-insensitive): {', '.join(strategy_names())}; `mpts-fast strategies` lists "
                   f"their options.")
@experiment_options
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Output directory; default runs/<dataset>-<strategy>.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last finished round, with its saved "
                                             "settings (options given again must agree; --repeats may grow).")
@click.option("--overwrite", is_flag=True, help="Start afresh even if --out holds results.")
@click.pass_context
def run(ctx: click.Context, strategy: str, out: str | None, resume: bool, overwrite: bool, **kw) -> None:
    """Run active learning with one strategy: with no options, MPTS on the embedded digits data set."""
    from mpts_fast.cli.names import dataset_label, resolve_dataset, resolve_strategy
    from mpts_fast.distributed import is_primary
    from mpts_fast.plots import plot_learning_curve
    from mpts_fast.results import CSV_FILE, aubc, summarize_runs, write_results_csv
    from mpts_fast.time_split import time_split, time_table

    if resume and overwrite:
        raise click.UsageError("--resume and --overwrite exclude each other")
    kw["dataset"] = resolve_dataset(kw["dataset"])
    strategy = resolve_strategy(strategy)
    out_dir = Path(out or f"runs/{dataset_label(kw['dataset'])}-{strategy}")
    if resume:
        saved = _load_saved(out_dir)
        saved_strategy = saved.get("strategy", strategy)
        if given(ctx, "strategy") and strategy != saved_strategy:
            raise click.UsageError(f"cannot resume {out_dir}: it holds a {saved_strategy!r} run, not {strategy!r}; "
                                   f"leave --strategy out or use another --out")
        strategy = saved_strategy
        kw = merge_saved(ctx, kw, saved, out_dir / "results.json")
    check_applicable(ctx, [strategy])
    results = execute(run_config(strategy, kw), out_dir, kw, resume, overwrite)
    if not is_primary():  # torchrun: rank 0 writes the plot and the CSV and prints the summary
        return
    png = plot_learning_curve(results, out_dir / "learning_curve.png")
    csv = write_results_csv(out_dir / CSV_FILE, [results])
    for r in results["runs"]:
        n = [rd["n_labeled"] for rd in r["rounds"]]
        a = [rd["test_accuracy"] for rd in r["rounds"]]
        click.echo(f"seed {r['seed']}: final accuracy {a[-1]:.3f} with {n[-1]} labels, AUBC {aubc(n, a):.3f}")
    if len(results["runs"]) > 1:
        click.echo(seeds_line(summarize_runs(results)))
    click.echo("\n".join(time_table({strategy: time_split(results)})))
    click.echo(f"results: {out_dir / 'results.json'} (one row per seed and round: {csv})\nplot: {png}")
