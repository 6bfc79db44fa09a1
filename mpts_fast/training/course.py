"""One model's course through a training run: its learning-rate schedule, the fitting recipe's stopping rule, the
cyclic phase that may follow, which steps are snapshots, and its λ probe. The sequential trainer (trainer.py) keeps
one, lockstep training (lockstep.py) one per stacked model, so both follow the same rules."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, update_bn

from mpts_fast.training.config import TrainConfig
from mpts_fast.training.diagnostics import GradientProbe
from mpts_fast.training.posterior import cpu_state
from mpts_fast.training.recipe import STOP_BUDGET, STOP_EPOCHS, STOP_TARGET, FitScheduler, warmup_steps
from mpts_fast.training.schedule import TrajectoryPlan, TrajectoryScheduler, plan_cycles_after, plan_trajectory


class LRDriver(torch.optim.Optimizer):
    """A model's learning rate as an optimiser's param_groups, which its schedulers (FitScheduler, and SWALR inside
    TrajectoryScheduler, which needs an Optimizer) set and a stacked step reads. Holds no parameters and never
    steps; Optimizer.__init__ is skipped because its add_param_group imports torch._dynamo (~1 s, once a process)."""

    def __init__(self, lr: float) -> None:  # Optimizer.__init__ not called, on purpose (above)
        self.param_groups = [{"lr": lr}]
        self.defaults = {"lr": lr}
        self.state = {}
        self._opt_called = True  # the LR scheduler's "step() before optimizer.step()" warning is moot

    def step(self, closure=None) -> None:
        return None


@dataclass
class Course:
    """driver: the optimiser (or LRDriver) whose param_groups the schedule drives; end: the step training stops
    before (moved by the stopping rule); keep: the steps whose weights are snapshots; probed: whether λ is measured
    (not under DDP)."""

    driver: torch.optim.Optimizer
    schedule: object
    plan: TrajectoryPlan | None
    end: int
    keep: set[int]
    probe: GradientProbe | None
    fitting: bool
    probed: bool
    training: bool = True
    steps_done: int = 0
    reached: tuple[int, float] | None = None
    fit: dict | None = None
    snapshots: list = field(default_factory=list)
    swa: AveragedModel | None = None
    lr_trace: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    def take_snapshot(self, model: nn.Module) -> None:
        """The model's weights now: a snapshot, and into the snapshots' equal-weight (SWA) average."""
        self.snapshots.append(cpu_state(model))
        if self.swa is None:
            self.swa = AveragedModel(model)
        self.swa.update_parameters(model)

    def result(self, model: nn.Module, x_pool: torch.Tensor, labeled: torch.Tensor, steps_per_epoch: int,
               steps_done: int) -> dict:
        """What a finished training returns (Trainer._fit_one's dict): the model in eval mode, the snapshots and their
        average (BatchNorm statistics recomputed on the labeled set: SWA's last step), the schedule, the LR of every
        step, the probe's record, how the fitting phase ended (under the paper recipe: its fixed epochs)."""
        model.eval()
        if self.swa is not None:
            device = next(model.parameters()).device
            update_bn([x_pool[labeled[p.to(labeled.device)]].to(device)
                       for p in torch.arange(labeled.numel()).tensor_split(steps_per_epoch)], self.swa)
            self.swa.eval()
        fit = self.fit or {"steps": steps_done, "stop": STOP_EPOCHS, "running_accuracy": None, "target_step": None}
        return {"model": model, "snapshots": self.snapshots, "epoch_seconds": self.epoch_seconds,
                "swa_model": self.swa, "plan": self.plan, "lr_trace": self.lr_trace,
                "probe": None if self.probe is None else self.probe.record(), "fit": fit, "total_steps": steps_done}


def start_course(cfg: TrainConfig, steps_per_epoch: int, driver: torch.optim.Optimizer, probed: bool) -> Course:
    """A course at step 0. λ is measured on the second half, the cyclic phase; under `fit` from its cyclic phase on,
    or from the start without one."""
    if cfg.recipe == "fit":  # the fitting phase first; its cyclic phase (if any) is planned once it has stopped
        schedule = FitScheduler(driver, cfg.lr, cfg.steps, warmup_steps(cfg.steps, cfg.warmup_fraction))
        probe = GradientProbe(0) if probed and cfg.snapshots == 0 else None
        return Course(driver, schedule, None, cfg.steps, set(), probe, fitting=True, probed=probed)
    plan = plan_trajectory(cfg, steps_per_epoch)
    probe = GradientProbe(plan.total_steps - (cfg.epochs // 2) * steps_per_epoch) if probed else None
    return Course(driver, TrajectoryScheduler(driver, plan), plan, plan.total_steps, set(plan.snapshot_steps), probe,
                  fitting=False, probed=probed)


def end_fitting_epoch(cfg: TrainConfig, c: Course, accuracy: float, done: int, epoch: int,
                      steps_per_epoch: int) -> None:
    """The fitting recipe's rule at the end of an epoch with running training accuracy `accuracy`, `done` steps
    taken: reach the target, settle for settle·done more steps, stop; then the cyclic phase, when snapshots are
    wanted (else `training` ends)."""
    if c.reached is None and cfg.target_accuracy is not None and accuracy >= cfg.target_accuracy:
        c.reached = (done, accuracy)
        tail = int(round(cfg.settle * done))
        if tail > 0 and done < cfg.steps:
            c.schedule.settle(done, min(tail, cfg.steps - done))
        c.end = min(cfg.steps, done + tail)
    stop = (STOP_TARGET if c.reached is not None and done >= c.end else
            STOP_BUDGET if done >= cfg.steps else
            STOP_EPOCHS if cfg.epochs is not None and epoch >= cfg.epochs else None)
    if stop is None:
        return
    c.fitting = False
    c.fit = {"steps": done, "stop": stop, "running_accuracy": accuracy,
             "target_step": None if c.reached is None else c.reached[0]}
    if cfg.snapshots != 0:  # the cyclic phase starts from the fitted weights
        c.plan = plan_cycles_after(cfg, done, steps_per_epoch)
        c.schedule, c.end, c.keep = TrajectoryScheduler(c.driver, c.plan), c.plan.total_steps, set(c.plan.snapshot_steps)
        if c.probed:
            c.probe = GradientProbe(done)
    else:
        c.end = done
        c.training = False
