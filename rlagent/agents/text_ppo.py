"""``TextPPO``: Stable-Baselines3's PPO, which also runs the agent's training-time aids.

The auxiliary head (:mod:`rlagent.agents.auxiliary`) learns from supervised steps after each
rollout, a callback; so does the behaviour-cloning term that keeps a warm-started policy close
to its expert (:mod:`rlagent.agents.behaviour_cloning`). :class:`TextPPO` attaches those
callbacks to every ``learn`` call when the agent's settings ask for them
(``model.rlagent_spec["auxiliary"]`` and ``["warm_start"]``, written by
:func:`rlagent.make_ppo`), and warm-starts a new agent whose settings enable it before its
first update (:func:`rlagent.agents.warm_start`), so ``model.learn(n)`` trains the agent the
way ``rlagent train`` does. Everything else is SB3's ``PPO``; the saved files are the same.
"""

from __future__ import annotations

import sys
from functools import partial
from typing import Any

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback
from stable_baselines3.common.logger import HumanOutputFormat, Logger
from stable_baselines3.common.utils import configure_logger

from rlagent.agents.auxiliary import AuxiliaryLoss
from rlagent.agents.behaviour_cloning import BehaviourCloning
from rlagent.agents.settings import AuxiliaryConfig
from rlagent.agents.warm_starting import (
    WarmStartConfig,
    model_demonstrations,
    warm_start,
)

__all__ = ["TextPPO", "sb3_logger"]

_LOSS = "_auxiliary_loss"
_CLONING = "_behaviour_cloning"


class TextPPO(PPO):
    """SB3's ``PPO`` whose ``learn`` also runs the agent's auxiliary loss and warm start.

    The :class:`AuxiliaryLoss` is built once from ``rlagent_spec["auxiliary"]`` (an
    :class:`rlagent.agents.AuxiliaryConfig` as a dict) and kept across ``learn`` calls, so
    its separate optimizer carries on; it is not saved with the model (a trainer that
    checkpoints a run saves :meth:`AuxiliaryLoss.optimizer_state` beside it). A ``learn``
    call that passes its own :class:`AuxiliaryLoss` uses that one instead.

    With an enabled ``rlagent_spec["warm_start"]`` (an
    :class:`rlagent.agents.WarmStartConfig` as a dict), the first ``learn`` of an untrained
    agent that has not been warm-started calls :func:`rlagent.agents.warm_start`, and every
    ``learn`` runs :attr:`behaviour_cloning` (its demonstrations rebuilt from the settings
    when this process did not collect them, as in a resumed run).
    """

    @property
    def auxiliary_loss(self) -> AuxiliaryLoss | None:
        """The callback that trains the auxiliary head in ``learn`` (``None``: no such head)."""
        loss = self.__dict__.get(_LOSS)
        if loss is None:
            settings = (getattr(self, "rlagent_spec", None) or {}).get("auxiliary")
            if settings:
                loss = AuxiliaryConfig.from_dict(settings).callback()
                self.__dict__[_LOSS] = loss
        return loss

    @property
    def warm_start_config(self) -> WarmStartConfig | None:
        """The warm-start settings (``None``: not enabled)."""
        settings = (getattr(self, "rlagent_spec", None) or {}).get("warm_start")
        if not settings:
            return None
        config = WarmStartConfig.from_dict(settings)
        return config if config.enabled else None

    @property
    def behaviour_cloning(self) -> BehaviourCloning | None:
        """The decaying behaviour-cloning term run in ``learn`` (``None``: none)."""
        config = self.warm_start_config
        if config is None or not config.clones_during_ppo:
            return None
        cached = self.__dict__.get(_CLONING)
        if cached is not None and cached[0] == config:
            return cached[1]
        seed = (getattr(self, "rlagent_spec", None) or {}).get("seed")
        cloning = BehaviourCloning(
            config.bc_coef,
            config.bc_decay_steps,
            batches=config.bc_batches,
            batch_size=config.batch_size,
            demonstrations=partial(model_demonstrations, self),
            seed=int(seed or 0),
        )
        self.__dict__[_CLONING] = (config, cloning)
        return cloning

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1,
        tb_log_name: str = "PPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> TextPPO:
        """SB3's ``PPO.learn``, warm-starting first if due, with the aids first among callbacks."""
        spec = getattr(self, "rlagent_spec", None) or {}
        if (
            self.warm_start_config is not None
            and "warm_started" not in spec
            and self.num_timesteps == 0
        ):
            warm_start(self)
        callbacks = _as_list(callback)
        aids: list[BaseCallback] = []
        loss = self.auxiliary_loss
        if loss is not None and not any(isinstance(c, AuxiliaryLoss) for c in _flat(callbacks)):
            aids.append(loss)
        cloning = self.behaviour_cloning
        if cloning is not None and not any(
            isinstance(c, BehaviourCloning) for c in _flat(callbacks)
        ):
            aids.append(cloning)
        if aids:
            callback = [*aids, *callbacks]
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> Any:
        """SB3's setup, with a logger that writes no files when there is no TensorBoard folder.

        SB3 otherwise makes an empty ``SB3-<time>`` folder in the temporary directory on every
        ``learn`` call without ``tensorboard_log``.
        """
        if self._custom_logger:
            return super()._setup_learn(
                total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
            )
        self._logger = sb3_logger(
            self.verbose, self.tensorboard_log, tb_log_name, reset_num_timesteps
        )
        self._custom_logger = True  # keep SB3 from configuring another
        try:
            return super()._setup_learn(
                total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
            )
        finally:
            self._custom_logger = False

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), _LOSS, _CLONING]


def sb3_logger(
    verbose: int, tensorboard_log: str | None, tb_log_name: str, reset_num_timesteps: bool
) -> Logger:
    """SB3's ``configure_logger``, without its empty temporary folder when nothing is written.

    With a TensorBoard folder it is SB3's own; without one, a logger that prints (``verbose``
    >= 1) or does nothing, and creates no folder.
    """
    if tensorboard_log is not None:
        return configure_logger(verbose, tensorboard_log, tb_log_name, reset_num_timesteps)
    formats = [HumanOutputFormat(sys.stdout)] if verbose >= 1 else []
    return Logger(folder=None, output_formats=formats)


def _as_list(callback: Any) -> list[BaseCallback]:
    if callback is None:
        return []
    if isinstance(callback, list):
        return list(callback)
    if isinstance(callback, BaseCallback):
        return [callback]
    return [ConvertCallback(callback)]


def _flat(callbacks: list[BaseCallback]) -> list[BaseCallback]:
    out = []
    for callback in callbacks:
        out += _flat(callback.callbacks) if isinstance(callback, CallbackList) else [callback]
    return out
