"""Training: the trainer (cross-entropy, MPTS MMD term, cyclic-LR trajectory snapshots, ensembles) and the trained-model
view that strategies query."""
from mpts_fast.training.config import TrainConfig
from mpts_fast.training.mmd import mmd_penalty
from mpts_fast.training.posterior import PosteriorSource, TrainedModel
from mpts_fast.training.trainer import Trainer, derive_seed

__all__ = ["TrainConfig", "Trainer", "TrainedModel", "PosteriorSource", "mmd_penalty", "derive_seed"]
