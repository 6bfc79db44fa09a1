"""`mpts-fast select`: one real annotation round. From the pool, the labels gathered so far and a backbone trained here
(--model) or your model's outputs (--embeddings / --probs), write the items to annotate next, in pick order, with
their scores and the settings. Exit codes: 2 for a bad input (naming the option), 1 for a runtime error."""
from __future__ import annotations

from pathlib import Path

import click

from mpts_fast.cli.al_options import strategy_options
from mpts_fast.training.config import DEFAULT_MMD_WEIGHT

_OPTION = {"pool": "--pool", "labeled": "--labeled", "embeddings": "--embeddings", "probs": "--probs",
           "budget": "--budget", "strategy": "--strategy", "strategy_options": "--option", "model": "--model",
           "num_classes": "--classes", "class_names": "--class-names", "epochs": "--epochs", "lr": "--lr",
           "batch_size": "--batch-size", "mmd_weight": "--mmd-weight", "snapshots": "--snapshots",
           "device": "--device", "out": "--out"}

_FILE = click.Path(exists=False, dir_okay=True, path_type=Path)


@click.command("select")
@click.option("--pool", "-p", type=_FILE, help="The pool: a .npy (N, features) or (N, *image shape), or an .npz "
                                               "holding it; memory-mapped. Needed with --model.")
@click.option("--labeled", "-l", type=_FILE, help="The labels so far: a CSV (index,label) or JSON ({index: label}) of "
                                                  "pool indices. Left out: none yet (a cold start: "
                                                  "--strategy random, or coreset with --embeddings).")
@click.option("--budget", "-b", type=int, required=True, help="How many items to annotate next.")
@click.option("--strategy", "-s", help="Query strategy (`mpts-fast strategies`); default mpts with --model or (S, N, "
                                       "C) --probs, entropy with (N, C) --probs, coreset with --embeddings alone.")
@click.option("--model", "-m", help="Train this backbone here on the labeled items: mlp, resnet18, vit_small, cnn1d.")
@click.option("--embeddings", type=_FILE, help="Your model's penultimate features of the pool, (N, D) .npy.")
@click.option("--probs", type=_FILE, help="Your model's softmax outputs on the pool, (N, C) .npy; (S, N, C) for "
                                          "posterior samples (snapshots, MC-dropout passes, ensemble members).")
@click.option("--classes", "num_classes", type=int, help="Number of classes; default: --class-names' count, the "
                                                         "probabilities' C, else the largest label + 1.")
@click.option("--class-names", type=_FILE, help="Class names, .txt (one per line) or .json list; labels may then be "
                                                "names.")
@click.option("--epochs", type=int, help="Training epochs with --model; default 100.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adam learning rate with --model.")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Training batch size with --model.")
@click.option("--mmd-weight", type=float, default=DEFAULT_MMD_WEIGHT, show_default=True, help="λ of the MMD² term (mpts, --model).")
@click.option("--snapshots", type=int, help="Trajectory snapshots (mpts, --model); default one per cycle.")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="A strategy option, repeatable.")
@click.option("--seed", type=int, default=0, show_default=True, help="Same inputs and seed, same picks.")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto (training with --model).")
@click.option("--out", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("next_batch.csv"),
              show_default=True, help="Where to write the picks: .csv (plus <name>.settings.json) or .json.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars; print only where the picks went.")
def select(pool, labeled, budget, strategy, model, embeddings, probs, num_classes, class_names, epochs, lr,
           batch_size, mmd_weight, snapshots, options, seed, device, out, overwrite, quiet) -> None:
    """Pick the pool items to annotate next, from your labels and a backbone trained here (--model) or your own
    model's outputs (--embeddings / --probs)."""
    from mpts_fast.cli.names import resolve_name, resolve_strategy
    from mpts_fast.models import model_names
    from mpts_fast.select import InputError, select_next

    if out.suffix.lower() not in (".csv", ".json"):
        raise click.BadParameter(f"{out}: expected a .csv or .json file name", param_hint="'--out'")
    targets = [out] if out.suffix.lower() == ".json" else [out, out.with_suffix(".settings.json")]
    if not overwrite and any(p.exists() for p in targets):
        raise click.UsageError(f"{', '.join(str(p) for p in targets if p.exists())} exists; pass --overwrite to "
                               f"replace it, or choose another --out")
    if model is not None:
        model = resolve_name(model, model_names(), what="backbone", param_hint="'--model'")
        for name, value in (("--embeddings", embeddings), ("--probs", probs)):
            if value is not None:
                raise click.UsageError(f"--model trains a backbone here; {name} gives your model's outputs instead: "
                                       f"use one or the other")
    else:
        for name, value in (("--epochs", epochs), ("--snapshots", snapshots)):
            if value is not None:
                raise click.BadParameter("applies only when training a backbone here (--model)", param_hint=f"'{name}'")
    if strategy is not None:
        strategy = resolve_strategy(strategy)
    opts = strategy_options(strategy, options, prefix_required=False) if strategy and options else {}
    if options and strategy is None:
        raise click.BadParameter("name the strategy (--strategy) whose option this is", param_hint="'--option'")
    try:
        sel = select_next(pool, labeled, budget=budget, strategy=strategy, model=model, embeddings=embeddings,
                          probs=probs, seed=seed, num_classes=num_classes, class_names=class_names, epochs=epochs,
                          lr=lr, batch_size=batch_size, mmd_weight=mmd_weight, snapshots=snapshots,
                          strategy_options=opts, device=device, progress=not quiet)
        written = sel.write(out, overwrite=overwrite)
    except InputError as e:
        raise click.BadParameter(str(e).partition(": ")[2], param_hint=f"'{_OPTION.get(e.field, e.field)}'") from None
    except FileExistsError as e:
        raise click.UsageError(str(e).removeprefix("out: ")) from None
    except (ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    s = sel.settings
    if not quiet:
        how = (f"{s['model']} trained here on {s['n_labeled']} labels" if s["mode"] == "train" else
               "a uniform draw, nothing trained" if s["mode"] == "random" else "your model's outputs")
        click.echo(f"{s['strategy']} picked {len(sel.indices)} of {s['n_unlabeled']:,} unlabeled items ({how}, "
                   f"seed {s['seed']})")
        shown = sel.rows()[:20]
        width = max(len(str(r["index"])) for r in shown)
        score = sel.score_name or "score"
        click.echo(f"{'rank':>5} {'index':>{max(width, 5)}} {score if sel.score_name else ''}".rstrip())
        for r in shown:
            value = "" if r["score"] is None else f"{r['score']:.6g}"
            click.echo(f"{r['rank']:>5} {r['index']:>{max(width, 5)}} {value}".rstrip())
        if len(sel.indices) > len(shown):
            click.echo(f"  ... {len(sel.indices) - len(shown)} more in {out}")
        if sel.score_name is None:
            click.echo(f"({s['strategy']} picks by diversity or at random: the order is the pick order, no score)")
    click.echo(f"picks: {written[0]}" + (f" (settings: {written[1]})" if len(written) > 1 else ""))
