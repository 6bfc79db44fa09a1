"""Command-line options a strategy declares on its class (`Strategy.cli_options`), and those its training recipe brings
(`Needs.mmd` → --mmd-weight, `Needs.snapshots` → --snapshots and the cyclic-LR settings). `mpts-fast run` and
`compare` build their per-strategy options from these declarations (cli/al_options.py)."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from mpts_fast.training.config import (DEFAULT_CYCLE_MAX_FACTOR, DEFAULT_CYCLE_MIN_FACTOR, DEFAULT_CYCLE_STEPS,
                                       DEFAULT_MMD_WEIGHT)

_FLAG = re.compile(r"^--[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class StrategyOption:
    """One `--flag VALUE` of `mpts-fast run` / `compare`.

    flag: the option, e.g. "--mc-passes". key: where the value goes: with to="strategy" the constructor keyword
    (BALD's `passes`; its default must equal the constructor's), with to="run" the RunConfig field that training reads
    (e.g. `mmd_weight`; the flag is then the field's name, --mmd-weight). type: int, float or str. minimum: the
    smallest accepted value (exclusive when `strict`); None: no bound. audience: who uses it, in words ("strategies
    trained with the MMD term"), for the message refusing it in a run without such a strategy. shown_default: the
    default as `mpts-fast strategies` shows it where `default` is None (resolved later)."""

    flag: str
    key: str
    type: type
    help: str
    default: Any = None
    to: Literal["strategy", "run"] = "strategy"
    minimum: float | None = None
    strict: bool = False
    audience: str = ""
    shown_default: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.flag, str) or not _FLAG.match(self.flag):
            raise ValueError(f"flag: expected a long option such as '--mc-passes', got {self.flag!r}")
        if not isinstance(self.key, str) or not self.key.isidentifier():
            raise ValueError(f"key: expected a Python identifier, got {self.key!r}")
        if self.type not in (int, float, str):
            raise ValueError(f"type: expected int, float or str, got {self.type!r}")
        if self.to not in ("strategy", "run"):
            raise ValueError(f"to: expected 'strategy' or 'run', got {self.to!r}")
        if self.to == "run" and self.param != self.key:  # the CLI reads the value under the field's own name
            raise ValueError(f"flag: a run setting's flag is its field's name, --{self.key.replace('_', '-')}, "
                             f"got {self.flag!r}")
        if self.default is not None:
            try:
                self.validate(self.default)
            except ValueError as e:
                raise ValueError(f"default of {self.flag}: {e}") from None

    @property
    def param(self) -> str:
        """The click parameter name: --mc-passes → mc_passes."""
        return self.flag[2:].replace("-", "_")

    def expected(self) -> str:
        """What a valid value is, in words: 'a positive integer', 'a number ≥ 0'."""
        noun = {int: "an integer", float: "a number", str: "a string"}[self.type]
        if self.minimum is None:
            return noun
        if self.minimum == 0 and self.strict or self.type is int and self.minimum == 1 and not self.strict:
            return {int: "a positive integer", float: "a positive number"}[self.type]
        return f"{noun} {'>' if self.strict else '≥'} {self.minimum:g}"

    def validate(self, value: Any) -> Any:
        """The value, checked against type and minimum; ValueError 'key: expected …, got …' otherwise."""
        ok = not isinstance(value, bool)
        if ok and self.type is int:
            ok = isinstance(value, int)
        elif ok and self.type is float:
            ok = isinstance(value, (int, float)) and not math.isnan(value)
        elif ok:
            ok = isinstance(value, str)
        if ok and self.minimum is not None:
            ok = value > self.minimum if self.strict else value >= self.minimum
        if not ok:
            raise ValueError(f"{self.key}: expected {self.expected()}, got {value!r}")
        return float(value) if self.type is float else value


_SNAPSHOTS = "strategies that score with trajectory snapshots"

# The run settings each training-recipe feature reads (Needs.mmd, Needs.snapshots): a strategy gets them by declaring
# the feature in its `needs`. Their values are checked with the training settings (loop.validate, TrainConfig), where
# they are checked together (e.g. cycle_min_factor ≤ cycle_max_factor).
RECIPE_OPTIONS: dict[str, tuple[StrategyOption, ...]] = {
    "mmd": (
        StrategyOption("--mmd-weight", "mmd_weight", float, default=DEFAULT_MMD_WEIGHT, to="run",
                       audience="strategies trained with the MMD term",
                       help="λ of the MMD² regulariser (the paper leaves it open; our default from the λ sweep in docs/mpts.md)."),
    ),
    "snapshots": (
        StrategyOption("--snapshots", "snapshots", int, to="run", audience=_SNAPSHOTS,
                       shown_default="paper: one per cycle, at most epochs // 2; fit: 25",
                       help="Trajectory snapshots kept; default one per cycle, at most epochs // 2 (fewer when fewer "
                            "cycles fit: recorded per round)."),
        StrategyOption("--cycle-steps", "cycle_steps", int, to="run", audience=_SNAPSHOTS,
                       shown_default=str(DEFAULT_CYCLE_STEPS),
                       help=f"Optimiser steps per cyclic-LR cycle in the second half of training; our default "
                            f"{DEFAULT_CYCLE_STEPS} (docs/mpts.md)."),
        StrategyOption("--cycle-max-factor", "cycle_max_factor", float, to="run", audience=_SNAPSHOTS,
                       shown_default=f"{DEFAULT_CYCLE_MAX_FACTOR:g}",
                       help=f"LR at a cycle's start, as a multiple of --lr; our default {DEFAULT_CYCLE_MAX_FACTOR:g}."),
        StrategyOption("--cycle-min-factor", "cycle_min_factor", float, to="run", audience=_SNAPSHOTS,
                       shown_default=f"{DEFAULT_CYCLE_MIN_FACTOR:g}",
                       help=f"LR at a cycle's end, where the snapshot is taken, as a multiple of --lr; our default "
                            f"{DEFAULT_CYCLE_MIN_FACTOR:g}."),
    ),
}
