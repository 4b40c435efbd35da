"""The Ray Tune backend: the same search run by Ray, recorded in the same Optuna study."""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlagent.training.config import TrainConfig
from rlagent.training.tuning.config import SearchSpace, TuneConfig, TuneError
from rlagent.training.tuning.optuna_backend import _make_sampler, _warmup_steps
from rlagent.training.tuning.space import (
    _METRIC,
    _max_step,
    _trial_config,
    _trial_dir,
    progress_step,
    sample_params,
)

_RAY_HINT = "The ray backend needs Ray Tune: pip install rlagent[distributed]"


def _ray_trial(params: dict[str, Any], *, base: dict[str, Any], out_dir: str) -> None:
    """One Ray Tune trial: train with the sampled settings, reporting every evaluation."""
    from ray import tune as ray_tune

    import rlagent  # noqa: F401  (registers the bundled environments in the worker)
    from rlagent.training.run import train

    params = dict(params)
    number = int(params.pop("trial_number"))
    run_config = _trial_config(TrainConfig(**base), params)

    def on_eval(entry: dict[str, Any]) -> bool:
        ray_tune.report(
            {
                _METRIC: float(entry[_METRIC]),
                "timesteps": int(entry["timesteps"]),
                "evaluation": progress_step(entry["timesteps"], run_config.eval_freq),
                "final": bool(entry["timesteps"] >= run_config.n_timesteps),
                "trial_number": number,
            }
        )
        return True

    # Trial numbers are unique in the study and tune() refuses an output folder holding another
    # study's trials, so an existing folder is an earlier attempt of this very trial (Ray
    # restarts a trial from scratch after a failure or a pause): start it over.
    train(run_config, _trial_dir(Path(out_dir), number), on_eval=on_eval, overwrite=True)


@dataclass(frozen=True)
class _DefineByRun:
    """Ray's OptunaSearch space: sample a trial's settings and pass its number along.

    A picklable class, since Ray saves the searcher with its experiment state.
    """

    space: SearchSpace
    n_envs: int
    budget: int

    def __call__(self, trial: Any) -> dict[str, Any]:
        sample_params(trial, self.space, n_envs=self.n_envs, budget=self.budget)
        return {"trial_number": trial.number}


def _ray_trial_dirname(trial: Any) -> str:
    return f"ray_{trial.trial_id}"


def _run_ray(
    config: TuneConfig, base: TrainConfig, out_dir: Path, study: Any, storage: Any
) -> list[int]:
    try:
        import ray
        from ray import tune as ray_tune
        from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as exc:
        raise ImportError(f"{_RAY_HINT} ({exc})") from exc

    class _Search(OptunaSearch):
        """OptunaSearch that reports at progress steps and records stopped trials as pruned.

        OptunaSearch reports each result at Ray's ``training_iteration``; trials here report
        at :func:`progress_step` instead, as in the Optuna backend. The result that ends a
        trial reaches only ``on_trial_complete``: it is reported there too, and a trial Ray
        stopped before its final evaluation is told to the study as pruned.
        """

        def _report(self, trial_id: str, result: dict) -> None:
            ot_trial = getattr(self, "_ot_trials", {}).get(trial_id)
            if ot_trial is not None and _METRIC in result and "evaluation" in result:
                with warnings.catch_warnings():  # "step already reported" is harmless
                    warnings.simplefilter("ignore")
                    ot_trial.report(float(result[_METRIC]), int(result["evaluation"]))

        def on_trial_result(self, trial_id: str, result: dict) -> None:
            self._report(trial_id, result)

        def on_trial_complete(
            self, trial_id: str, result: dict | None = None, error: bool = False
        ) -> None:
            if result is not None:
                self._report(trial_id, result)
                if not result.get("final", False):
                    result = {k: v for k, v in result.items() if k != _METRIC}
            super().on_trial_complete(trial_id, result=result, error=error)

    n_before = len(study.get_trials(deepcopy=False))
    search = _Search(
        space=_DefineByRun(config.search_space, base.n_envs, base.n_timesteps),
        metric=_METRIC,
        mode="max",
        sampler=_make_sampler(config, n_before),
        study_name=study.study_name,
        storage=storage,
    )
    if config.pruner == "halving":
        scheduler: Any = ASHAScheduler(
            time_attr="evaluation",
            max_t=max(_max_step(config, base), config.n_evaluations) + 1,
            grace_period=1,
            reduction_factor=3,
        )
    elif config.pruner == "median":
        scheduler = MedianStoppingRule(
            time_attr="evaluation",
            grace_period=_warmup_steps(config),
            min_samples_required=max(config.n_startup_trials, 1),
            min_time_slice=sys.maxsize,  # never pause a trial: it would restart from scratch
        )
    else:
        scheduler = FIFOScheduler()
    started = False
    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parents[3])
        path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)
        ray.init(
            address=config.ray_address,
            include_dashboard=False,
            runtime_env={"env_vars": {"PYTHONPATH": path}},
        )
        started = True
    try:
        tuner = ray_tune.Tuner(
            ray_tune.with_parameters(_ray_trial, base=base.to_dict(), out_dir=str(out_dir)),
            tune_config=ray_tune.TuneConfig(
                metric=_METRIC,
                mode="max",
                search_alg=search,
                scheduler=scheduler,
                num_samples=config.n_trials,
                time_budget_s=config.timeout_s,
                trial_dirname_creator=_ray_trial_dirname,
            ),
            run_config=ray_tune.RunConfig(
                name=config.resolved_study_name,
                storage_path=str(out_dir / "ray"),
                verbose=0,
            ),
        )
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for the caller's output
            grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    errors = [str(e) for e in grid.errors]
    if errors and len(errors) == len(grid):
        raise TuneError(f"All {len(grid)} Ray trials failed; the first error: {errors[0]}")
    return [t.number for t in study.get_trials(deepcopy=False)[n_before:]]
