"""Training workflow: configuration, the train loop, checkpoints and resume, reports."""

from rlagent.training.checkpoints import CheckpointError, find_latest_checkpoint
from rlagent.training.config import ConfigError, TrainConfig, load_config, parse_kwargs
from rlagent.training.run import RunDirectoryExistsError, TrainResult, train

__all__ = [
    "CheckpointError",
    "ConfigError",
    "RunDirectoryExistsError",
    "TrainConfig",
    "TrainResult",
    "find_latest_checkpoint",
    "load_config",
    "parse_kwargs",
    "train",
]
