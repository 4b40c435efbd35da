"""Training workflow: configuration, the train loop, checkpoints and resume, reports."""

from rlagent.training.averaging import AveragingError, average_policy_weights
from rlagent.training.checkpoints import (
    CheckpointError,
    UntrustedCheckpointError,
    find_latest_checkpoint,
)
from rlagent.training.config import ConfigError, TrainConfig, load_config, parse_kwargs
from rlagent.training.run import TrainResult, train
from rlagent.training.rundir import (
    RESUMABLE_SETTINGS,
    ForeignDirectoryError,
    ResumeError,
    RunDirectoryExistsError,
    is_run_directory,
    resume_config,
)

__all__ = [
    "RESUMABLE_SETTINGS",
    "AveragingError",
    "CheckpointError",
    "ConfigError",
    "ForeignDirectoryError",
    "ResumeError",
    "RunDirectoryExistsError",
    "TrainConfig",
    "TrainResult",
    "UntrustedCheckpointError",
    "average_policy_weights",
    "find_latest_checkpoint",
    "is_run_directory",
    "load_config",
    "parse_kwargs",
    "resume_config",
    "train",
]
