"""Names typed on the command line (data sets, strategies): matched case-insensitively, '-' read as '_', and a
"did you mean" for near misses."""
from __future__ import annotations

import difflib
import warnings

import click


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def resolve_name(value: str, choices: list[str], *, what: str, param_hint: str) -> str:
    """The registered spelling of `value` among `choices`; a BadParameter (exit 2) listing them otherwise."""
    by_key = {_key(c): c for c in choices}
    if _key(value) in by_key:
        return by_key[_key(value)]
    close = difflib.get_close_matches(_key(value), list(by_key), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(repr(by_key[c]) for c in close)}? " if close else ""
    raise click.BadParameter(f"unknown {what} {value!r}; {hint}expected one of {', '.join(choices)}",
                             param_hint=param_hint)


def resolve_dataset(value: str) -> str:
    """A registered name, or your own data set's absolute path (an .npz file or a directory of .npy files): loaded
    here (memory-mapped, checked) so a bad file is a usage error before anything runs, with its inferred defaults
    printed to stderr."""
    from mpts_fast.data import dataset_names, own

    if own.is_own_dataset(value):
        try:
            with warnings.catch_warnings():  # the summary below says it, in one line and without a source location
                warnings.simplefilter("ignore", own.LabelsRemappedWarning)
                ds = own.load_own_dataset(value)
        except (ValueError, OSError) as e:
            raise click.BadParameter(str(e).removeprefix("dataset: "), param_hint="'--dataset'") from None
        click.echo(own.summary(ds), err=True)
        return ds.name
    return resolve_name(value, dataset_names(), what="data set", param_hint="'--dataset'")


def dataset_label(dataset: str) -> str:
    """A data set's name for default output directories: the registered name, or your own file's stem."""
    from mpts_fast.data import own

    return own.label(dataset) if own.is_own_dataset(dataset) else dataset


def resolve_strategy(value: str, param_hint: str = "'--strategy'") -> str:
    from mpts_fast.strategies import strategy_names

    return resolve_name(value, strategy_names(), what="strategy", param_hint=param_hint)
