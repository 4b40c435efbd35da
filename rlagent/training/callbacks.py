"""Stable-Baselines3 callbacks used by :func:`rlagent.training.train`."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback

from rlagent.agents.saving import save_model
from rlagent.training.checkpoints import save_checkpoint

__all__ = ["EnvMetricsCallback", "RunCallback", "StopFlag"]


class StopFlag:
    """Set by a signal handler; the training callback stops at the next step when set."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __bool__(self) -> bool:
        return self.signal is not None


class EnvMetricsCallback(BaseCallback):
    """Logs the environments' own episode metrics under ``env/`` and the encoder cache.

    At each episode end the env's ``info["episode_metrics"]`` (e.g. ``success_rate``,
    ``turns``) is collected; at each rollout end their means are recorded as
    ``env/<name>``, and the frozen encoder's cache hit rate as ``encoder/cache_hit_rate``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._sums: dict[str, float] = {}
        self._episodes = 0

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=False):
            metrics = info.get("episode_metrics") if done else None
            if metrics:
                self._episodes += 1
                for key, value in metrics.items():
                    self._sums[key] = self._sums.get(key, 0.0) + float(value)
        return True

    def _on_rollout_end(self) -> None:
        if self._episodes:
            for key, total in self._sums.items():
                self.logger.record(f"env/{key}", total / self._episodes)
        self._sums, self._episodes = {}, 0
        info = cache_info(self.model)
        if info is not None:
            self.logger.record("encoder/cache_hit_rate", info["hit_rate"])
            self.logger.record("encoder/cache_size", info["size"])


def cache_info(model: Any) -> dict[str, float] | None:
    """The frozen text encoder's cache statistics, or ``None`` when it has no cache."""
    extractor = getattr(model.policy, "features_extractor", None)
    getter = getattr(extractor, "cache_info", None)
    if getter is None:
        return None
    info = getter()
    if info is None:
        return None
    if not isinstance(info, dict):
        info = info._asdict() if hasattr(info, "_asdict") else vars(info)
    return {k: float(v) for k, v in info.items() if isinstance(v, (int, float))}


class RunCallback(BaseCallback):
    """Checkpoints, periodic evaluation with ``best_model/``, and clean interruption.

    Work happens at rollout starts, i.e. right after a policy update, when the model's
    timestep counter equals the steps it has been trained on; a checkpoint therefore never
    holds steps that were collected but not learned from.

    Args:
        out_dir: The run directory.
        run_state: Mutable run progress shared with the trainer (``eval_history``,
            ``best_mean_return``...), saved inside every checkpoint.
        evaluate: Called with the model, returns a dict with at least ``mean_return``.
        eval_freq: Evaluate every this many steps (0: never during training).
        checkpoint_freq: Checkpoint every this many steps (0: never during training).
        keep_checkpoints: Number of checkpoints to keep.
        stop_flag: When set (by a signal handler), training stops at the next step.
        on_eval: Called with each evaluation entry; returning False stops training early
            (used by tuning to prune a trial).
        extra_state: ``{key: function}``: before each checkpoint, ``run_state[key]`` is set to
            ``function()`` (state outside the model that a resumed run needs, such as a
            separate optimizer's).
    """

    def __init__(
        self,
        *,
        out_dir: Path,
        run_state: dict[str, Any],
        evaluate: Callable[[Any], dict[str, Any]],
        eval_freq: int,
        checkpoint_freq: int,
        keep_checkpoints: int,
        stop_flag: StopFlag,
        on_eval: Callable[[dict[str, Any]], bool] | None = None,
        extra_state: Mapping[str, Callable[[], Any]] | None = None,
    ) -> None:
        super().__init__()
        self.out_dir = out_dir
        self.run_state = run_state
        self._evaluate = evaluate
        self.eval_freq = eval_freq
        self.checkpoint_freq = checkpoint_freq
        self.keep_checkpoints = keep_checkpoints
        self.stop_flag = stop_flag
        self.on_eval = on_eval
        self.extra_state = dict(extra_state or {})
        self.stopped_early = False
        self.trained_timesteps = 0
        self._last_eval = 0
        self._last_checkpoint = 0
        self._started = time.perf_counter()

    def _on_training_start(self) -> None:
        self.trained_timesteps = int(self.model.num_timesteps)
        self._last_eval = int(self.run_state.get("last_eval_timesteps", self.trained_timesteps))
        self._last_checkpoint = self.trained_timesteps
        self._started = time.perf_counter()

    def elapsed(self) -> float:
        """Wall time of the whole run so far, across resumes, in seconds."""
        return self.run_state.get("wall_time_before_s", 0.0) + time.perf_counter() - self._started

    def run_evaluation(self) -> dict[str, Any]:
        """Evaluate now, log under ``eval/``, record history and keep the best model."""
        result = self._evaluate(self.model)
        timesteps = int(self.model.num_timesteps)
        entry = {"timesteps": timesteps, "wall_time_s": round(self.elapsed(), 2), **result}
        self.run_state.setdefault("eval_history", []).append(entry)
        self.run_state["last_eval_timesteps"] = timesteps
        self._last_eval = timesteps
        for key, value in result.items():
            if isinstance(value, (int, float)) and key not in ("episodes",):
                self.logger.record(f"eval/{key}", float(value))
        best = self.run_state.get("best_mean_return")
        if best is None or result["mean_return"] > best:
            self.run_state["best_mean_return"] = float(result["mean_return"])
            self.run_state["best_timesteps"] = timesteps
            save_model(self.model, self.out_dir / "best_model")
        if self.on_eval is not None and self.on_eval(entry) is False:
            self.stopped_early = True
        return entry

    def checkpoint(self) -> None:
        """Write a checkpoint of the current (trained) state."""
        self.run_state["wall_time_s"] = self.elapsed()
        for key, state in self.extra_state.items():
            self.run_state[key] = state()
        save_checkpoint(
            self.model, self.out_dir / "checkpoints", self.run_state, keep=self.keep_checkpoints
        )
        self._last_checkpoint = int(self.model.num_timesteps)

    def _on_rollout_start(self) -> None:
        self.trained_timesteps = int(self.model.num_timesteps)
        if self.eval_freq and self.trained_timesteps - self._last_eval >= self.eval_freq:
            self.run_evaluation()
            self.logger.dump(self.trained_timesteps)
        if (
            self.checkpoint_freq
            and self.trained_timesteps - self._last_checkpoint >= self.checkpoint_freq
        ):
            self.checkpoint()

    def _on_step(self) -> bool:
        return not (self.stop_flag or self.stopped_early)
