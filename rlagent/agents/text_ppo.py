"""``TextPPO``: Stable-Baselines3's PPO, which also trains the policy's auxiliary head.

The auxiliary head (:mod:`rlagent.agents.auxiliary`) learns from supervised steps after each
rollout, a callback. :class:`TextPPO` attaches that callback to every ``learn`` call when the
agent's settings ask for it (``model.rlagent_spec["auxiliary"]``, written by
:func:`rlagent.make_ppo`), so ``model.learn(n)`` trains the agent the way ``rlagent train``
does. Everything else is SB3's ``PPO``; the saved files are the same.
"""

from __future__ import annotations

from typing import Any

from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, ConvertCallback

from rlagent.agents.auxiliary import AuxiliaryLoss
from rlagent.agents.settings import AuxiliaryConfig

__all__ = ["TextPPO"]

_LOSS = "_auxiliary_loss"


class TextPPO(PPO):
    """SB3's ``PPO`` whose ``learn`` also runs the agent's :class:`AuxiliaryLoss`.

    The loss is built once from ``rlagent_spec["auxiliary"]`` (an
    :class:`rlagent.agents.AuxiliaryConfig` as a dict) and kept across ``learn`` calls, so
    its separate optimizer carries on; it is not saved with the model (a trainer that
    checkpoints a run saves :meth:`AuxiliaryLoss.optimizer_state` beside it). A ``learn``
    call that passes its own :class:`AuxiliaryLoss` uses that one instead.
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

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        log_interval: int = 1,
        tb_log_name: str = "PPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> TextPPO:
        """SB3's ``PPO.learn``, with :attr:`auxiliary_loss` run first among the callbacks."""
        callbacks = _as_list(callback)
        loss = self.auxiliary_loss
        if loss is not None and not any(isinstance(c, AuxiliaryLoss) for c in _flat(callbacks)):
            callback = [loss, *callbacks]
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), _LOSS]


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
