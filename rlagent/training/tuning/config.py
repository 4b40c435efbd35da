"""Tuning settings: what a search varies, how it runs, where it is stored, and its errors."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
        bad = [(s, m) for s in self.n_steps for m in self.n_minibatches if s < 1 or m < 1 or s % m]
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
        encoder_layers: Hidden states every trial pools (default: the env config's); ``[-1]``
            for an encoder with fewer layers than the config names.
        seed: Seeds every trial's training (the same for all trials, so that they differ only
            by their hyperparameters) and the sampler. With a shared ``storage`` the sampler's
            seed also mixes in the process id and the number of trials already in the study,
            so that processes started with the same command propose different trials.
        eval_episodes: Episodes per evaluation (default: the env config's).
        out_dir: Folder for trial runs and results (default ``runs/tune-<env name>``).
        eval_env_kwargs: Keyword arguments merged over the env config's evaluation env (its
            ``eval_env_kwargs`` over its ``env_kwargs``), which scores trials. ``None`` keeps
            that env: the validation split ``split="val"`` for the customer-service env, fresh
            episodes of the training env (their own seeds) for an env config without
            ``eval_env_kwargs``. Never score trials on a test split: it stays the unbiased
            final check of the configuration picked.
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
    encoder_layers: Sequence[int] | None = None
    seed: int = 0
    eval_episodes: int | None = None
    out_dir: str | None = None
    eval_env_kwargs: Mapping[str, Any] | None = None
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
