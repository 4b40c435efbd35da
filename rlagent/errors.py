"""Which exceptions the CLI reports as a one-line error instead of a traceback.

Library code raises specific exception classes (subclasses of ``ValueError``,
``FileNotFoundError``, ``FileExistsError``, ``RuntimeError`` or Gymnasium's ``Error``) whose
messages say what was wrong and how to fix it; the CLI prints those messages. Set
``RLAGENT_DEBUG=1`` to see full tracebacks instead.
"""

from __future__ import annotations

import os

__all__ = ["user_errors"]


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types the CLI turns into ``rlagent CMD: error: MESSAGE`` (exit status 2)."""
    if os.environ.get("RLAGENT_DEBUG"):
        return ()
    import gymnasium.error

    from rlagent.training.checkpoints import CheckpointError
    from rlagent.training.tuning import TuneError

    return (
        ValueError,
        FileNotFoundError,
        FileExistsError,
        ImportError,
        CheckpointError,
        TuneError,
        gymnasium.error.Error,
    )
