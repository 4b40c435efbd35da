"""Datasets of logged decisions: episodes with the behaviour policy's propensities.

:func:`read_episodes` reads a Minari dataset written by ``rlagent logs export`` (an interaction
log) or collected with the same layout; see :mod:`rlagent.datasets.episodes`.
"""

from rlagent.datasets.episodes import DatasetError, Episode, read_episodes

__all__ = ["DatasetError", "Episode", "read_episodes"]
