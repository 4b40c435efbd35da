"""Training workflow: configuration, the train loop, checkpoints and resume, reports."""

from rlagent.training.averaging import AveragingError, average_policy_weights
from rlagent.training.checkpoints import CheckpointError, find_latest_checkpoint
from rlagent.training.config import ConfigError, TrainConfig, load_config, parse_kwargs
from rlagent.training.run import RunDirectoryExistsError, TrainResult, train

__all__ = [
    "AveragingError",
    "CheckpointError",
    "ConfigError",
    "RunDirectoryExistsError",
    "TrainConfig",
    "TrainResult",
    "average_policy_weights",
    "find_latest_checkpoint",
    "load_config",
    "parse_kwargs",
    "train",
]
