"""Hyperparameter search behind ``rlagent tune``: Optuna on one machine, Ray Tune on a cluster.

Each trial is an ordinary training run (:func:`rlagent.training.train`) in
``<out_dir>/trials/trial_<n>`` whose PPO and encoder settings come from :class:`SearchSpace`.
The trial's periodic evaluations are reported to the search so that poor trials stop early
(median or successive-halving pruning); the objective, maximised, is the mean return of the
final evaluation.

With ``storage`` (a database URL such as ``sqlite:///tune.db``, or a journal file path such as
``tune.log``) the study lives outside the process: several processes, on one machine or many,
started with the same ``storage`` and ``study_name`` join one study and share its results
(the RL Baselines3 Zoo convention). ``backend="ray"`` runs the same search through Ray Tune,
with Ray's own early stopping, and records it in the same Optuna study.

Results in ``out_dir``: ``summary.json``, ``summary.md``, ``best_config.yaml`` (usable with
``rlagent train --config``) and ``trials.png`` (objective per trial, best so far, and each
trial's evaluations).

Example:
    >>> from rlagent.training.tuning import TuneConfig, tune
    >>> config = TuneConfig(env_id="rlagent/CustomerService-v0", n_trials=20)
    >>> summary = tune(config)  # doctest: +SKIP
    >>> summary["best_trial"]["params"]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlagent.training.config import ConfigError, TrainConfig, load_config

__all__ = [
    "BACKENDS",
    "PRUNERS",
    "SAMPLERS",
    "SearchSpace",
    "TuneConfig",
    "TuneConfigError",
    "TuneError",
    "format_tune_summary",
    "params_to_overrides",
    "plot_trials",
    "sample_params",
    "tune",
]

logger = logging.getLogger(__name__)

#: Search backends: ``"optuna"`` (in-process, optional shared storage) or ``"ray"`` (Ray Tune).
BACKENDS: tuple[str, ...] = ("optuna", "ray")
#: Samplers: Tree-structured Parzen Estimator or uniform random search.
SAMPLERS: tuple[str, ...] = ("tpe", "random")
#: Early stopping of poor trials.
PRUNERS: tuple[str, ...] = ("median", "halving", "none")
#: Policy/value head sizes searched under the name ``net_arch``.
NET_ARCHS: Mapping[str, dict[str, list[int]]] = {
    "small": {"pi": [64, 64], "vf": [64, 64]},
    "medium": {"pi": [128, 64], "vf": [128, 64]},
    "large": {"pi": [256, 256], "vf": [256, 256]},
}

_RDB_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mariadb", "oracle", "mssql")
_SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
_OPTUNA_HINT = "Hyperparameter tuning needs Optuna: pip install rlagent[tune]"
_RAY_HINT = "The ray backend needs Ray Tune: pip install rlagent[distributed]"
_METRIC = "mean_return"


class TuneConfigError(ValueError):
    """Raised for tuning settings that cannot be used (bad backend, trial count, storage...)."""


class TuneError(RuntimeError):
    """Raised when a search produced no usable trial (e.g. every trial failed)."""


@dataclass(frozen=True)
class SearchSpace:
    """What the search varies. An empty tuple (or ``None`` for ranges) keeps the run's setting.

    Attributes:
        learning_rate: ``(low, high)`` of a log-uniform learning rate.
        n_steps: Rollout lengths per env. Choices whose rollout (``n_steps * n_envs``) exceeds
            the per-trial budget are dropped (the smallest is always kept), so that every trial
            learns from at least one full rollout.
        n_minibatches: Minibatches per rollout; ``batch_size = n_steps * n_envs //
            n_minibatches``, always a divisor of the rollout. Every ``n_steps`` choice must be
            a multiple of every ``n_minibatches`` choice.
        n_epochs: PPO epochs per rollout.
        gamma: Discount factors.
        gae_lambda: GAE lambdas.
        ent_coef: ``(low, high)`` of a log-uniform entropy coefficient.
        clip_range: PPO clip ranges.
        net_arch: Head sizes, keys of :data:`NET_ARCHS`.
        max_length: Tokens per text segment.
        pooling: How the encoder pools token embeddings (``"mean"``, ``"cls"``).
    """

    learning_rate: tuple[float, float] | None = (1e-5, 3e-3)
    n_steps: tuple[int, ...] = (64, 128, 256, 512)
    n_minibatches: tuple[int, ...] = (1, 2, 4, 8)
    n_epochs: tuple[int, ...] = (3, 5, 10)
    gamma: tuple[float, ...] = (0.9, 0.95, 0.98, 0.99, 0.995)
    gae_lambda: tuple[float, ...] = (0.9, 0.95, 0.98, 1.0)
    ent_coef: tuple[float, float] | None = (1e-6, 0.05)
    clip_range: tuple[float, ...] = (0.1, 0.2, 0.3)
    net_arch: tuple[str, ...] = ("small", "medium", "large")
    max_length: tuple[int, ...] = (32, 48, 64)
    pooling: tuple[str, ...] = ("mean", "cls")

    def __post_init__(self) -> None:
        for name in ("learning_rate", "ent_coef"):
            bounds = getattr(self, name)
            if bounds is not None and not (len(bounds) == 2 and 0 < bounds[0] <= bounds[1]):
                raise TuneConfigError(
                    f"SearchSpace.{name} = {bounds!r}; expected (low, high) with "
                    f"0 < low <= high, or None to keep the run's {name}."
                )
        unknown = sorted(set(self.net_arch) - set(NET_ARCHS))
        if unknown:
            raise TuneConfigError(
                f"SearchSpace.net_arch has unknown size(s) {unknown}; expected names from "
                f"{sorted(NET_ARCHS)}."
            )
        if self.n_minibatches and not self.n_steps:
            raise TuneConfigError(
                "SearchSpace.n_minibatches needs n_steps choices (batch_size is derived from "
                "the rollout length); give n_steps or set n_minibatches=()."
            )
        bad = [(s, m) for s in self.n_steps for m in self.n_minibatches if s < 1 or s % m]
        if bad:
            raise TuneConfigError(
                f"SearchSpace: n_steps {bad[0][0]} is not a positive multiple of n_minibatches "
                f"{bad[0][1]}; use powers of two, e.g. n_steps=(64, 128), n_minibatches=(1, 2, 4)."
            )


@dataclass(frozen=True)
class TuneConfig:
    """A hyperparameter search.

    Attributes:
        env_id: Registered environment id.
        env_kwargs: Training env keyword arguments (merged over the env's bundled config).
        n_trials: Trials this process runs; with a shared ``storage``, each process runs its
            own ``n_trials`` and the study holds them all.
        timesteps: Environment steps per trial (default: the env config's ``n_timesteps``).
        storage: ``None`` (in memory), a database URL (``sqlite:///tune.db``,
            ``postgresql://...``) or a journal file path (``tune.log``).
        study_name: Name of the study in ``storage`` (default ``ppo-<env name>``).
        backend: ``"optuna"`` or ``"ray"``.
        sampler: ``"tpe"`` or ``"random"``.
        pruner: ``"median"``, ``"halving"`` (successive halving) or ``"none"``.
        encoder: Encoder name or folder for every trial (default: the env config's).
        seed: Seeds every trial's training (the same for all trials, so that they differ only
            by their hyperparameters) and the sampler. With a shared ``storage`` the sampler's
            seed also mixes in the process id and the number of trials already in the study,
            so that processes started with the same command propose different trials.
        eval_episodes: Episodes per evaluation (default: the env config's).
        out_dir: Folder for trial runs and results (default ``runs/tune-<env name>``).
        n_evaluations: Evaluations per trial, i.e. chances to prune it.
        n_startup_trials: Trials before TPE models the search and before pruning starts.
        n_envs: Parallel envs per trial (default: the env config's).
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (default: the env config's).
        config_file: A YAML of :class:`~rlagent.training.TrainConfig` settings the trials
            start from (as ``rlagent train --config``).
        search_space: What is searched.
        timeout_s: Stop starting new trials after this many seconds.
        ray_address: Address of a running Ray cluster (``"auto"``); ``None`` uses the Ray
            instance already started in this process, or starts a local one.
    """

    env_id: str
    env_kwargs: Mapping[str, Any] = field(default_factory=dict)
    n_trials: int = 20
    timesteps: int | None = None
    storage: str | None = None
    study_name: str | None = None
    backend: str = "optuna"
    sampler: str = "tpe"
    pruner: str = "median"
    encoder: str | None = None
    seed: int = 0
    eval_episodes: int | None = None
    out_dir: str | None = None
    n_evaluations: int = 4
    n_startup_trials: int = 5
    n_envs: int | None = None
    device: str | None = None
    config_file: str | None = None
    search_space: SearchSpace = field(default_factory=SearchSpace)
    timeout_s: float | None = None
    ray_address: str | None = None

    def __post_init__(self) -> None:
        choices = {"backend": BACKENDS, "sampler": SAMPLERS, "pruner": PRUNERS}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                expected = ", ".join(repr(a) for a in allowed)
                raise TuneConfigError(
                    f"{name} = {value!r}; expected one of {expected} (--{name} {allowed[0]})."
                )
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise TuneConfigError(
                f"n_trials = {self.n_trials!r}; expected at least 1 trial (e.g. --trials 20)."
            )
        positive = {
            "timesteps": self.timesteps,
            "eval_episodes": self.eval_episodes,
            "n_envs": self.n_envs,
            "n_evaluations": self.n_evaluations,
            "timeout_s": self.timeout_s,
        }
        for name, value in positive.items():
            if value is not None and value <= 0:
                raise TuneConfigError(f"{name} = {value!r}; expected a positive number or None.")
        if self.n_startup_trials < 0:
            raise TuneConfigError(f"n_startup_trials = {self.n_startup_trials!r}; expected >= 0.")
        if self.storage is not None:
            parse_storage(self.storage)

    @property
    def env_name(self) -> str:
        """The env id without namespace or module, safe in paths (``CustomerService-v0``)."""
        name = self.env_id.split("/")[-1].split(":")[-1]
        return re.sub(r"[^A-Za-z0-9._-]+", "-", name)

    @property
    def resolved_study_name(self) -> str:
        """``study_name`` or ``ppo-<env name>``."""
        return self.study_name or f"ppo-{self.env_name}"

    @property
    def resolved_out_dir(self) -> Path:
        """``out_dir`` or ``runs/tune-<env name>``, absolute."""
        return Path(self.out_dir or f"runs/tune-{self.env_name}").resolve()


def parse_storage(storage: str) -> tuple[str, str]:
    """Classify a ``--storage`` value.

    Args:
        storage: A database URL (``sqlite:///tune.db``) or a journal file path (``tune.log``).

    Returns:
        ``("url", storage)`` or ``("journal", path)``.

    Raises:
        TuneConfigError: Empty, an unsupported URL scheme, a folder that does not exist, or a
            path that looks like an SQLite file given without ``sqlite:///``.
    """
    text = storage.strip()
    example = "a database URL such as sqlite:///tune.db or a journal file path such as tune.log"
    if not text:
        raise TuneConfigError(f"storage = {storage!r}; expected {example}.")
    if "://" in text:
        scheme = text.split("://", 1)[0].split("+", 1)[0].lower()
        if scheme not in _RDB_SCHEMES:
            raise TuneConfigError(
                f"storage = {storage!r}: {scheme!r} is not a database Optuna can use; expected "
                f"{example} (database schemes: {', '.join(_RDB_SCHEMES)})."
            )
        if scheme == "sqlite":
            path = text[len("sqlite:///") :] if text.startswith("sqlite:///") else ""
            if path and path != ":memory:":
                _check_parent(Path(path), storage)
        return "url", text
    path = Path(text)
    if path.suffix.lower() in _SQLITE_SUFFIXES:
        raise TuneConfigError(
            f"storage = {storage!r} looks like an SQLite file; write it as a URL, "
            f"sqlite:///{text}, or name a journal file such as {path.with_suffix('.log')}."
        )
    if path.is_dir():
        raise TuneConfigError(
            f"storage = {storage!r} is a folder; expected a journal file path inside it, "
            f"e.g. {path / 'tune.log'}."
        )
    _check_parent(path, storage)
    return "journal", text


def _check_parent(path: Path, storage: str) -> None:
    parent = path.expanduser().resolve().parent
    if not parent.is_dir():
        raise TuneConfigError(
            f"storage = {storage!r}: the folder {parent} does not exist; create it first "
            f"(mkdir -p {parent})."
        )


def _redact(url: str | None) -> str | None:
    """The storage URL with any password replaced by ``***``."""
    if url is None or "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    credentials, host = rest.rsplit("@", 1)
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise ImportError(f"{_OPTUNA_HINT} ({exc})") from exc
    return optuna


def _make_storage(config: TuneConfig) -> Any:
    optuna = _import_optuna()
    if config.storage is None:
        return optuna.storages.InMemoryStorage()
    kind, target = parse_storage(config.storage)
    if kind == "journal":
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        return JournalStorage(JournalFileBackend(str(Path(target).expanduser())))
    engine_kwargs = {"connect_args": {"timeout": 60}} if target.startswith("sqlite") else None
    # Processes that start together may race to create the tables: retry briefly.
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(target, engine_kwargs=engine_kwargs)
        except Exception as exc:  # sqlalchemy's OperationalError and friends
            if attempt == 4:
                raise TuneConfigError(
                    f"storage = {_redact(config.storage)!r} could not be opened: {exc}"
                ) from exc
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _sampler_seed(config: TuneConfig, n_existing: int) -> int:
    """The sampler's seed: ``seed``, mixed with the process id and the study's size when shared.

    Processes joining one study, at once or one after another, then propose different trials.
    """
    if config.storage is None:
        return config.seed
    return (config.seed * 1_000_003 + os.getpid() * 7_919 + n_existing) % (2**31)


def _make_sampler(config: TuneConfig, n_existing: int = 0) -> Any:
    optuna = _import_optuna()
    seed = _sampler_seed(config, n_existing)
    if config.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(n_startup_trials=config.n_startup_trials, seed=seed)


def _make_pruner(config: TuneConfig) -> Any:
    optuna = _import_optuna()
    if config.pruner == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=config.n_startup_trials,
            n_warmup_steps=config.n_evaluations // 3,
        )
    if config.pruner == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def base_train_config(config: TuneConfig) -> TrainConfig:
    """The training configuration every trial starts from (before its sampled settings).

    Evaluations are spaced for ``n_evaluations`` per trial; checkpoints are written only at
    the end and baselines are not evaluated.
    """
    base = load_config(
        config.env_id,
        config_file=config.config_file,
        env_kwargs=dict(config.env_kwargs),
        n_timesteps=config.timesteps,
        encoder=config.encoder,
        eval_episodes=config.eval_episodes,
        n_envs=config.n_envs,
        device=config.device,
        seed=config.seed,
        checkpoint_freq=0,
        keep_checkpoints=1,
        baseline_episodes=0,
    )
    return base.replace(eval_freq=max(base.n_timesteps // config.n_evaluations, 1))


def sample_params(trial: Any, space: SearchSpace, *, n_envs: int, budget: int) -> dict[str, Any]:
    """Draw one trial's settings from ``space`` through an Optuna ``trial``.

    Args:
        trial: An ``optuna.Trial`` (or anything with its ``suggest_*`` methods).
        space: What to search.
        n_envs: Parallel envs per trial (for the rollout size).
        budget: Environment steps per trial.

    Returns:
        The sampled values by name (as stored in the study).
    """
    params: dict[str, Any] = {}
    if space.learning_rate is not None:
        low, high = space.learning_rate
        params["learning_rate"] = trial.suggest_float("learning_rate", low, high, log=True)
    if space.n_steps:
        fitting = [n for n in space.n_steps if n * n_envs <= budget] or [min(space.n_steps)]
        params["n_steps"] = trial.suggest_categorical("n_steps", fitting)
    for name in ("n_minibatches", "n_epochs", "gamma", "gae_lambda"):
        if getattr(space, name):
            params[name] = trial.suggest_categorical(name, list(getattr(space, name)))
    if space.ent_coef is not None:
        low, high = space.ent_coef
        params["ent_coef"] = trial.suggest_float("ent_coef", low, high, log=True)
    for name in ("clip_range", "net_arch", "max_length", "pooling"):
        if getattr(space, name):
            params[name] = trial.suggest_categorical(name, list(getattr(space, name)))
    return params


def params_to_overrides(params: Mapping[str, Any], base: TrainConfig) -> dict[str, Any]:
    """Turn sampled ``params`` into :class:`~rlagent.training.TrainConfig` field values.

    ``n_minibatches`` becomes ``batch_size``; ``net_arch`` names become layer sizes;
    ``pooling`` goes to the text extractor; the rest are PPO arguments.

    Args:
        params: Values from :func:`sample_params`.
        base: The configuration the trial starts from.

    Returns:
        ``{"ppo": ..., "policy_kwargs": ..., "max_length": ...}`` merged over ``base``.
    """
    ppo = dict(base.ppo)
    policy_kwargs = dict(base.policy_kwargs)
    overrides: dict[str, Any] = {}
    for name, value in params.items():
        if name == "net_arch":
            policy_kwargs["net_arch"] = {k: list(v) for k, v in NET_ARCHS[value].items()}
        elif name == "pooling":
            extractor = dict(policy_kwargs.get("features_extractor_kwargs") or {})
            extractor["pooling"] = value
            policy_kwargs["features_extractor_kwargs"] = extractor
        elif name == "max_length":
            overrides["max_length"] = int(value)
        elif name != "n_minibatches":
            ppo[name] = value
    if "n_minibatches" in params:
        n_steps = int(ppo.get("n_steps", 128))
        ppo["batch_size"] = max(n_steps * base.n_envs // int(params["n_minibatches"]), 1)
    overrides["ppo"] = ppo
    overrides["policy_kwargs"] = policy_kwargs
    return overrides


def _trial_config(base: TrainConfig, params: Mapping[str, Any]) -> TrainConfig:
    return dataclasses.replace(base, **params_to_overrides(params, base))


def _trial_dir(out_dir: Path, number: int) -> Path:
    return out_dir / "trials" / f"trial_{number}"


def _check_trials_dir(out_dir: Path, n_existing: int) -> None:
    trials = out_dir / "trials"
    if n_existing == 0 and trials.is_dir() and any(trials.iterdir()):
        raise TuneConfigError(
            f"{trials} already holds trial runs of another study; the new study would write "
            "over them. Choose another --out, delete that folder, or pass the --storage and "
            "--study-name of the study that made them to continue it."
        )


# ----------------------------------------------------------------------------- optuna backend


def _objective(config: TuneConfig, base: TrainConfig, out_dir: Path, numbers: list[int]) -> Any:
    from rlagent.training.run import train

    optuna = _import_optuna()

    def objective(trial: Any) -> float:
        numbers.append(trial.number)
        params = sample_params(
            trial, config.search_space, n_envs=base.n_envs, budget=base.n_timesteps
        )
        run_config = _trial_config(base, params)
        trial.set_user_attr("batch_size", run_config.ppo.get("batch_size"))
        evaluations = 0
        pruned = False

        def on_eval(entry: dict[str, Any]) -> bool:
            nonlocal evaluations, pruned
            evaluations += 1
            trial.report(float(entry[_METRIC]), step=evaluations)
            trial.set_user_attr("timesteps", int(entry["timesteps"]))
            if entry["timesteps"] < run_config.n_timesteps and trial.should_prune():
                pruned = True
                return False
            return True

        try:
            result = train(run_config, _trial_dir(out_dir, trial.number), on_eval=on_eval)
        except ConfigError:
            raise
        except (ValueError, FloatingPointError, RuntimeError) as exc:
            # Typically a diverged run (NaN logits); the search goes on without this trial.
            logger.warning("Trial %d failed: %s", trial.number, exc)
            trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
            return float("nan")
        trial.set_user_attr("wall_time_s", round(result.wall_time_s, 2))
        trial.set_user_attr("fps", round(result.fps, 1))
        if result.interrupted:
            trial.set_user_attr("error", "interrupted")
            trial.study.stop()
            return float("nan")
        if pruned:
            raise optuna.TrialPruned(f"pruned after {result.timesteps} steps")
        return float(result.metrics["final"][_METRIC])

    return objective


def _run_optuna(
    config: TuneConfig, base: TrainConfig, out_dir: Path, study: Any, storage: Any
) -> list[int]:
    numbers: list[int] = []
    study.optimize(
        _objective(config, base, out_dir, numbers),
        n_trials=config.n_trials,
        timeout=config.timeout_s,
        gc_after_trial=True,
    )
    return numbers


def _create_study(config: TuneConfig, storage: Any, *, sampler: Any) -> Any:
    optuna = _import_optuna()
    study = optuna.create_study(
        storage=storage,
        study_name=config.resolved_study_name,
        sampler=sampler,
        pruner=_make_pruner(config),
        direction="maximize",
        load_if_exists=True,
    )
    if study.direction != optuna.study.StudyDirection.MAXIMIZE:
        raise TuneConfigError(
            f"Study {config.resolved_study_name!r} in {_redact(config.storage)} minimises its "
            "objective; rlagent maximises the mean return. Choose another --study-name."
        )
    return study


# -------------------------------------------------------------------------------- ray backend


def _ray_trial(params: dict[str, Any], *, base: dict[str, Any], out_dir: str) -> None:
    """One Ray Tune trial: train with the sampled settings, reporting every evaluation."""
    from ray import tune as ray_tune

    import rlagent  # noqa: F401  (registers the bundled environments in the worker)
    from rlagent.training.run import train

    params = dict(params)
    number = int(params.pop("trial_number"))
    run_config = _trial_config(TrainConfig(**base), params)
    evaluations = 0

    def on_eval(entry: dict[str, Any]) -> bool:
        nonlocal evaluations
        evaluations += 1
        ray_tune.report(
            {
                _METRIC: float(entry[_METRIC]),
                "timesteps": int(entry["timesteps"]),
                "evaluation": evaluations,
                "final": bool(entry["timesteps"] >= run_config.n_timesteps),
                "trial_number": number,
            }
        )
        return True

    train(run_config, _trial_dir(Path(out_dir), number), on_eval=on_eval)


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
        """Records a trial that Ray stopped before its final evaluation as pruned."""

        def on_trial_complete(
            self, trial_id: str, result: dict | None = None, error: bool = False
        ) -> None:
            if result is not None and not result.get("final", False):
                result = {k: v for k, v in result.items() if k != _METRIC}
            super().on_trial_complete(trial_id, result=result, error=error)

    space, n_envs, budget = config.search_space, base.n_envs, base.n_timesteps

    def define_by_run(trial: Any) -> dict[str, Any]:
        sample_params(trial, space, n_envs=n_envs, budget=budget)
        return {"trial_number": trial.number}

    n_before = len(study.get_trials(deepcopy=False))
    search = _Search(
        space=define_by_run,
        metric=_METRIC,
        mode="max",
        sampler=_make_sampler(config, n_before),
        study_name=study.study_name,
        storage=storage,
    )
    if config.pruner == "halving":
        scheduler: Any = ASHAScheduler(
            time_attr="evaluation",
            max_t=config.n_evaluations + 1,
            grace_period=1,
            reduction_factor=3,
        )
    elif config.pruner == "median":
        scheduler = MedianStoppingRule(
            time_attr="evaluation",
            grace_period=max(config.n_evaluations // 3, 1),
            min_samples_required=max(config.n_startup_trials, 1),
        )
    else:
        scheduler = FIFOScheduler()
    started = False
    if not ray.is_initialized():
        root = str(Path(__file__).resolve().parents[2])
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
        grid = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    errors = [str(e) for e in grid.errors]
    if errors and len(errors) == len(grid):
        raise TuneError(f"All {len(grid)} Ray trials failed; the first error: {errors[0]}")
    return [t.number for t in study.get_trials(deepcopy=False)[n_before:]]


# ------------------------------------------------------------------------------------ results


def _trial_records(study: Any, out_dir: Path) -> list[dict[str, Any]]:
    records = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
        records.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": value,
                "params": dict(trial.params),
                "intermediate_values": [
                    trial.intermediate_values[k] for k in sorted(trial.intermediate_values)
                ],
                "duration_s": round(duration, 2) if duration is not None else None,
                "run_dir": str(_trial_dir(out_dir, trial.number)),
                **{k: v for k, v in trial.user_attrs.items() if k in ("error", "batch_size")},
            }
        )
    return records


def plot_trials(
    trials: list[Mapping[str, Any]],
    path: Path,
    *,
    title: str = "",
    steps_per_evaluation: int | None = None,
) -> Path:
    """Plot a study: each trial's objective with the best so far, and its evaluations.

    Args:
        trials: Records with ``number``, ``state``, ``value`` and ``intermediate_values``.
        path: Where to write the PNG.
        title: Figure title.
        steps_per_evaluation: Environment steps between evaluations (for the axis label).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["intermediate_values"]]
    left.scatter(
        [t["number"] for t in done],
        [t["value"] for t in done],
        color="tab:blue",
        label="completed trial",
        zorder=3,
    )
    if pruned:
        left.scatter(
            [t["number"] for t in pruned],
            [t["intermediate_values"][-1] for t in pruned],
            color="tab:orange",
            marker="x",
            label="pruned (last evaluation)",
            zorder=3,
        )
    best_x, best_y, best = [], [], -math.inf
    for t in sorted(done, key=lambda t: t["number"]):
        best = max(best, t["value"])
        best_x.append(t["number"])
        best_y.append(best)
    if best_x:
        left.step(best_x, best_y, where="post", color="tab:red", label="best so far")
    left.set_xlabel("trial number")
    left.set_ylabel("final mean episode return (objective)")
    left.set_title("objective per trial")
    best_number = max(done, key=lambda t: t["value"])["number"] if done else None
    for t in trials:
        values = t["intermediate_values"]
        if not values:
            continue
        steps = list(range(1, len(values) + 1))
        if t["number"] == best_number:
            right.plot(
                steps,
                values,
                color="tab:red",
                lw=2.5,
                marker="o",
                zorder=3,
                label=f"best (trial {best_number})",
            )
        elif t["state"] == "PRUNED":
            right.plot(steps, values, color="tab:orange", lw=1, ls="--", alpha=0.7)
        else:
            right.plot(steps, values, color="tab:blue", lw=1, alpha=0.6)
    if any(t["state"] != "PRUNED" and t["number"] != best_number for t in trials):
        right.plot([], [], color="tab:blue", lw=1, label="other trials")
    if pruned:
        right.plot([], [], color="tab:orange", lw=1, ls="--", label="pruned trials")
    every = f" (every ~{steps_per_evaluation} env steps)" if steps_per_evaluation else ""
    right.set_xlabel(f"evaluation during the trial{every}")
    right.set_ylabel("mean episode return")
    right.set_title("evaluations within each trial")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="best", fontsize=9)
    counts = {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    fig.suptitle(
        f"{title}  ({len(trials)} trial{'s' * (len(trials) != 1)}: "
        f"{counts['COMPLETE']} completed, "
        f"{counts['PRUNED']} pruned, {counts['FAIL']} failed)".strip()
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _write_markdown(summary: Mapping[str, Any], path: Path) -> None:
    lines = [
        f"# Tuning {summary['env_id']}: study `{summary['study_name']}`",
        "",
        f"- backend: {summary['backend']}, sampler: {summary['sampler']}, "
        f"pruner: {summary['pruner']}",
        f"- storage: {summary['storage'] or 'in memory'}",
        f"- trials: {summary['n_trials']} ({summary['n_complete']} completed, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed); "
        f"{summary['n_trials_this_run']} run by this process",
        f"- steps per trial: {summary['timesteps_per_trial']}",
        "",
    ]
    best = summary["best_trial"]
    if best is None:
        lines += ["No trial has completed yet.", ""]
    else:
        lines += [
            f"## Best trial: {best['number']} (mean return {best['value']:.4g})",
            "",
            "| parameter | value |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in sorted(best["params"].items())],
            "",
            f"Run directory: `{best['run_dir']}`. Train with these settings:",
            "",
            f"    rlagent train --env {summary['env_id']} --config {summary['files']['config']}",
            "",
        ]
    lines += [
        "## All trials",
        "",
        "| trial | state | objective | duration (s) |",
        "|---|---|---|---|",
    ]
    ranked = sorted(
        summary["trials"], key=lambda t: (t["value"] is None, -(t["value"] or 0.0), t["number"])
    )
    for t in ranked:
        value = "" if t["value"] is None else f"{t['value']:.4g}"
        lines.append(f"| {t['number']} | {t['state']} | {value} | {t['duration_s'] or ''} |")
    lines += ["", f"![trials]({Path(summary['files']['plot']).name})", ""]
    path.write_text("\n".join(lines))


def _summarise(
    config: TuneConfig, base: TrainConfig, study: Any, out_dir: Path, numbers: list[int]
) -> dict[str, Any]:
    trials = _trial_records(study, out_dir)
    states = [t["state"] for t in trials]
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    best = max(done, key=lambda t: t["value"]) if done else None
    files = {
        "summary_json": str(out_dir / "summary.json"),
        "summary_md": str(out_dir / "summary.md"),
        "plot": str(out_dir / "trials.png"),
        "config": str(out_dir / "best_config.yaml"),
    }
    summary: dict[str, Any] = {
        "env_id": config.env_id,
        "study_name": config.resolved_study_name,
        "storage": _redact(config.storage),
        "backend": config.backend,
        "sampler": config.sampler,
        "pruner": config.pruner,
        "timesteps_per_trial": base.n_timesteps,
        "n_trials": len(trials),
        "n_trials_this_run": len(numbers),
        "n_complete": states.count("COMPLETE"),
        "n_pruned": states.count("PRUNED"),
        "n_failed": states.count("FAIL"),
        "best_trial": None,
        "out_dir": str(out_dir),
        "files": files,
        "trials": trials,
    }
    if best is not None:
        overrides = params_to_overrides(best["params"], base)
        summary["best_trial"] = {
            "number": best["number"],
            "value": best["value"],
            "params": best["params"],
            "run_dir": best["run_dir"],
            "config": overrides,
        }
        Path(files["config"]).write_text(yaml.safe_dump(overrides, sort_keys=True))
    plot_trials(
        trials,
        Path(files["plot"]),
        title=f"{config.env_id}: {summary['study_name']}",
        steps_per_evaluation=base.eval_freq,
    )
    Path(files["summary_json"]).write_text(json.dumps(summary, indent=2, default=str))
    _write_markdown(summary, Path(files["summary_md"]))
    return summary


def tune(config: TuneConfig) -> dict[str, Any]:
    """Run a hyperparameter search and write its summary, plot and best configuration.

    Args:
        config: The search (see :class:`TuneConfig`).

    Returns:
        A JSON-ready summary: ``best_trial`` (``number``, ``value``, ``params``, ``run_dir``,
        ``config``) or ``None``, ``n_trials`` (all trials in the study, from every process),
        ``n_complete``/``n_pruned``/``n_failed``, ``study_name``, ``storage``, ``files``
        (``summary_json``, ``summary_md``, ``plot``, ``config``) and ``trials``.

    Raises:
        TuneConfigError: Bad settings or storage, or an output folder holding another study.
        ConfigError: The env's configuration cannot be used.
        ImportError: Optuna (or Ray for ``backend="ray"``) is not installed.
        TuneError: No trial of this run could be trained.
    """
    import gymnasium as gym

    import rlagent  # noqa: F401  (registers the bundled environments)

    gym.spec(config.env_id)  # unknown ids fail here, with Gymnasium's suggestions
    base = base_train_config(config)
    out_dir = config.resolved_out_dir
    storage = _make_storage(config)
    study = _create_study(config, storage, sampler=None)
    n_existing = len(study.get_trials(deepcopy=False))
    _check_trials_dir(out_dir, n_existing)
    study.sampler = _make_sampler(config, n_existing)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = _run_ray if config.backend == "ray" else _run_optuna
    numbers = run(config, base, out_dir, study, storage)
    summary = _summarise(config, base, study, out_dir, numbers)
    mine = [t for t in summary["trials"] if t["number"] in set(numbers)]
    if mine and all(t["state"] == "FAIL" for t in mine):
        errors = [t["error"] for t in mine if t.get("error")]
        raise TuneError(
            f"All {len(mine)} trials of this run failed"
            + (f"; the first error: {errors[0]}" if errors else "")
            + f". See {summary['files']['summary_md']}."
        )
    return summary


def format_tune_summary(summary: Mapping[str, Any]) -> str:
    """A few lines for a person: the study, trial counts, the best trial and the files."""
    lines = [
        f"Study {summary['study_name']!r} on {summary['env_id']} "
        f"({summary['backend']}, {summary['sampler']} sampler, {summary['pruner']} pruner; "
        f"storage: {summary['storage'] or 'in memory'})",
        f"Trials: {summary['n_trials']} in the study ({summary['n_complete']} completed, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed), "
        f"{summary['n_trials_this_run']} run here, {summary['timesteps_per_trial']} steps each",
    ]
    best = summary.get("best_trial")
    if best is None:
        lines.append("Best trial: none completed yet")
    else:
        lines.append(f"Best trial: {best['number']} with mean return {best['value']:.4g}")
        width = max(len(k) for k in best["params"]) if best["params"] else 0
        lines += [f"  {k:<{width}}  {v}" for k, v in sorted(best["params"].items())]
        lines.append(f"  run: {best['run_dir']}")
    files = summary["files"]
    lines.append(f"Summary: {files['summary_md']} (JSON: {files['summary_json']})")
    lines.append(f"Plot: {files['plot']}")
    if best is not None:
        lines.append(
            f"Train with the best settings: rlagent train --env {summary['env_id']} "
            f"--config {files['config']}"
        )
    return "\n".join(lines)
