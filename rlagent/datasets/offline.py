"""Learn a policy from logged episodes alone: weighted behaviour cloning or AWR, no simulator.

:func:`learn_from_dataset` reads a logged-decision dataset (:func:`read_episodes`: an exported
interaction log or a collected dataset) or takes :class:`Episode` objects, turns every logged
observation into the model's input through the model's own observation pipeline
(:func:`rlagent.pipeline.observation_converter`), holds out a seeded share of the episodes for
validation, trains the policy and critic with :func:`rlagent.agents.fit_offline`, and saves a
normal model folder that ``rlagent train --init`` (and ``rlagent evaluate``, ``serve``,
``ope``) takes.

Weights of behaviour cloning (``feedback_weight``), per episode, every decision of an episode
taking its episode's weight, then normalised so that the mean weight over the training
decisions is 1:

* ``"return"`` (default): ``w_e = exp(z_e / temperature)``, ``z_e = (R_e - mean R) / std R``
  the episode's undiscounted return (sum of its logged rewards; in an exported service log the
  sum of the feedback's ``reward`` values) standardised by the training episodes' mean and
  standard deviation (all weights 1 when every return is the same); the exponent is clipped to
  [-30, 30].
* ``"outcome"``: ``w_e = 1`` for an episode with a good outcome, ``negative_weight`` (default 0)
  for the others. The outcome, from the episode's feedback (``infos["feedback"]``, the
  exported log's JSON lists of feedback records) when it has any, else from its return:
  the last ``resolved`` said about the session or its steps decides; without one, a mean
  ``rating`` of at least :data:`GOOD_RATING` (4 of 5) is good; without either, a return
  above 0 is good.
* ``"none"``: 1 each (plain behaviour cloning).
* a function of an :class:`Episode` returning its weight (>= 0).

AWR's weights come from the critic fitted offline (see :mod:`rlagent.agents.offline_learning`);
``feedback_weight`` does not apply to it. Returns are discounted returns-to-go of the logged
rewards (``gamma``: the model's own by default) times the model's ``reward_scale``, never
bootstrapped at a truncation, never shaped (logs hold no hidden state to shape with).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlagent.datasets.decisions import logged_decisions, refit_probe
from rlagent.datasets.episodes import DatasetError, Episode, read_episodes
from rlagent.datasets.off_policy import dataset_env

__all__ = [
    "FEEDBACK_WEIGHTS",
    "GOOD_RATING",
    "OfflineResult",
    "episode_outcome",
    "feedback_weights",
    "learn_from_dataset",
    "logged_decisions",
    "split_episodes",
]

#: The named behaviour-cloning weightings (a function of an episode also works).
FEEDBACK_WEIGHTS = ("return", "outcome", "none")
#: A mean rating at least this high (of 5) is a good outcome.
GOOD_RATING = 4.0
#: The exponent of the ``"return"`` weighting is clipped to +- this.
_MAX_EXPONENT = 30.0

FeedbackWeight = str | Callable[[Episode], float]


@dataclass(frozen=True)
class OfflineResult:
    """What :func:`learn_from_dataset` did.

    Attributes:
        model_path: The saved model folder (``None`` when ``out`` was not given).
        method: ``"bc"`` or ``"awr"``.
        episodes: Episodes in the dataset.
        decisions: Decisions in them.
        train_episodes: Episodes trained on.
        val_episode_ids: Ids (:attr:`Episode.id`) of the held-out episodes.
        losses: Per epoch, the losses of :func:`rlagent.agents.fit_offline`.
        train_scores: :class:`rlagent.agents.OfflineScores` on the training decisions after
            learning, each weighted as the method weighs it.
        val_before: The same on the held-out decisions before learning (``None``: none held
            out).
        val_scores: On the held-out decisions after learning (``None``: none held out).
        settings: Every setting used (also saved in the model's spec as ``"offline"``).
        wall_time_s: Seconds it took.
        model: The trained model (not part of :meth:`to_dict`).
    """

    model_path: Path | None
    method: str
    episodes: int
    decisions: int
    train_episodes: int
    val_episode_ids: tuple[int, ...]
    losses: tuple[Mapping[str, float], ...]
    train_scores: Any
    val_before: Any
    val_scores: Any
    settings: Mapping[str, Any]
    wall_time_s: float
    model: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``rlagent learn --json``)."""
        return {
            "model_path": None if self.model_path is None else str(self.model_path),
            "method": self.method,
            "episodes": self.episodes,
            "decisions": self.decisions,
            "train_episodes": self.train_episodes,
            "val_episode_ids": list(self.val_episode_ids),
            "losses": [dict(epoch) for epoch in self.losses],
            "train": self.train_scores.to_dict(),
            "val_before": None if self.val_before is None else self.val_before.to_dict(),
            "val": None if self.val_scores is None else self.val_scores.to_dict(),
            "settings": dict(self.settings),
            "wall_time_s": self.wall_time_s,
        }


def _feedback_records(episode: Episode) -> list[Mapping[str, Any]]:
    column = (episode.infos or {}).get("feedback")
    if column is None:
        return []
    records = []
    for t, entry in enumerate(column):
        if isinstance(entry, bytes):
            entry = entry.decode("utf-8")
        if isinstance(entry, str):
            try:
                entry = json.loads(entry) if entry else []
            except json.JSONDecodeError as exc:
                raise DatasetError(
                    f"Episode {episode.id}: infos['feedback'][{t}] is not JSON ({exc}); it "
                    "should hold the list of feedback records rlagent logs export writes."
                ) from None
        records += [r for r in (entry or []) if isinstance(r, Mapping)]
    return records


def episode_outcome(episode: Episode) -> bool:
    """Whether ``episode`` went well: its last ``resolved``, else its ratings, else its return.

    See the module docstring for the exact rule.
    """
    records = _feedback_records(episode)
    resolved = [r["resolved"] for r in records if r.get("resolved") is not None]
    if resolved:
        return bool(resolved[-1])
    ratings = [float(r["rating"]) for r in records if r.get("rating") is not None]
    if ratings:
        return float(np.mean(ratings)) >= GOOD_RATING
    return float(np.sum(episode.rewards)) > 0


def feedback_weights(
    episodes: Sequence[Episode],
    rule: FeedbackWeight = "return",
    *,
    temperature: float = 1.0,
    negative_weight: float = 0.0,
    reference: Sequence[Episode] | None = None,
) -> np.ndarray:
    """Behaviour cloning's weight of each episode (see the module docstring for the rules).

    Args:
        episodes: The episodes.
        rule: ``"return"``, ``"outcome"``, ``"none"`` or a function of an episode.
        temperature: ``"return"``: divides the standardised return (> 0).
        negative_weight: ``"outcome"``: the weight of an episode that went badly (>= 0).
        reference: ``"return"``: the episodes whose returns' mean and standard deviation
            standardise (the training episodes); ``None``: ``episodes``.

    Returns:
        ``[E]`` float64 weights, not normalised.

    Raises:
        DatasetError: An unknown rule, a setting out of range, or a function that returned
            a negative or non-finite weight.
    """
    if not (temperature > 0 and negative_weight >= 0):
        raise DatasetError(
            f"temperature={temperature!r}, negative_weight={negative_weight!r}: expected "
            "temperature > 0 and negative_weight >= 0."
        )
    if callable(rule):
        weights = np.array([float(rule(e)) for e in episodes], dtype=np.float64)
        if not (np.isfinite(weights).all() and (weights >= 0).all()):
            raise DatasetError(
                f"feedback_weight={getattr(rule, '__name__', rule)!r} returned a negative or "
                "non-finite weight; a weight function must return a number >= 0 per episode."
            )
        return weights
    if rule == "none":
        return np.ones(len(episodes))
    if rule == "outcome":
        return np.array([1.0 if episode_outcome(e) else negative_weight for e in episodes])
    if rule == "return":
        returns = np.array([float(np.sum(e.rewards)) for e in episodes])
        ref = (
            returns
            if reference is None
            else np.array([float(np.sum(e.rewards)) for e in reference])
        )
        std = float(ref.std()) if ref.size else 0.0
        if std <= 0:
            return np.ones(len(episodes))
        z = (returns - float(ref.mean())) / std
        return np.exp(np.clip(z / temperature, -_MAX_EXPONENT, _MAX_EXPONENT))
    raise DatasetError(
        f"feedback_weight={rule!r} is unknown; expected one of {list(FEEDBACK_WEIGHTS)} or a "
        "function of an episode returning its weight."
    )


def split_episodes(n: int, val_share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the training and held-out episodes, by a seeded permutation.

    ``round(val_share * n)`` episodes are held out (at least 1 when ``val_share > 0`` and
    ``n >= 2``, never all): the first ones of ``np.random.default_rng(seed).permutation(n)``.

    Returns:
        ``(train, val)``, each sorted.
    """
    if not 0 <= val_share < 1:
        raise DatasetError(f"val_share={val_share!r}; expected a share in [0, 1).")
    held = 0 if val_share == 0 or n < 2 else min(max(1, round(val_share * n)), n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def _resolve_env(
    dataset: Any,
    env_id: str | None,
    env_kwargs: Mapping[str, Any] | None,
    init_spec: Mapping[str, Any] | None,
) -> tuple[str, dict[str, Any]]:
    """The env of the logged observations: given, else the dataset's, else the init model's."""
    recorded_id, recorded_kwargs = (None, {})
    if isinstance(dataset, str | os.PathLike):
        recorded_id, recorded_kwargs = dataset_env(dataset)
    sources = [(recorded_id, recorded_kwargs)]
    if init_spec:
        sources.append((init_spec.get("env_id"), dict(init_spec.get("env_kwargs") or {})))
    if env_id is None:
        env_id = next((i for i, _ in sources if i), None)
        if env_id is None:
            raise DatasetError(
                "The dataset records no env and no initial model names one; pass env_id= "
                "(--env ID), the env whose observations the episodes hold."
            )
    if env_kwargs is None:
        env_kwargs = next((kw for i, kw in sources if i == env_id), {})
    return env_id, dict(env_kwargs)


def _check_init_env(init: Any, init_spec: Mapping[str, Any], env_id: str) -> None:
    from rlagent.agents import ModelEnvMismatchError

    trained = init_spec.get("env_id")
    if trained and trained != env_id:
        raise ModelEnvMismatchError(
            f"The dataset was logged on {env_id} but the initial model {init} was trained on "
            f"{trained}; learn from logs of {trained}, or start from a model of {env_id} (or "
            "from none: init=None builds a new one)."
        )


def _check_out(out: Path | None, overwrite: bool) -> None:
    if out is not None and out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{out} exists and is not empty; pass overwrite=True (--overwrite) to replace a "
            "model saved there, or another folder."
        )


def learn_from_dataset(
    dataset: str | os.PathLike | Sequence[Episode],
    *,
    out: str | os.PathLike | None = None,
    init: str | os.PathLike | None = None,
    method: str = "bc",
    env_id: str | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    epochs: int = 20,
    batch_size: int = 64,
    learning_rate: float = 1e-3,
    value_coef: float = 0.5,
    feedback_weight: FeedbackWeight = "return",
    feedback_temperature: float = 1.0,
    negative_weight: float = 0.0,
    awr_beta: float = 1.0,
    awr_max_weight: float = 20.0,
    critic_epochs: int = 2,
    awr_lambda: float = 1.0,
    awr_prior: str = "logger",
    probe_feedback: bool = False,
    probe_anchor: float = 0.0,
    probe_patience: int | None = None,
    gamma: float | None = None,
    val_share: float = 0.2,
    seed: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
    settings: Mapping[str, Any] | None = None,
    logger: Any = None,
) -> OfflineResult:
    """Train a policy (and its critic) from logged episodes, without a simulator.

    Args:
        dataset: A logged-decision dataset folder, or the episodes themselves.
        out: The model folder to save to (``None``: not saved; the model is in the result).
        init: A model folder to start from (e.g. the logging agent v1); ``None``: a new
            :func:`rlagent.make_ppo` model of the dataset's env, built with ``settings``.
        method: ``"bc"`` or ``"awr"`` (see :mod:`rlagent.agents.offline_learning`).
        env_id: The env of the logged observations; ``None``: the one the dataset records,
            else the initial model's. Used to read observations, never stepped.
        env_kwargs: Its keyword arguments; ``None``: those recorded with that env id.
        epochs: Passes over the training decisions (``"awr"``: policy passes).
        batch_size: Decisions per minibatch.
        learning_rate: Adam's learning rate.
        value_coef: ``"bc"``: weight of the critic's loss.
        feedback_weight: ``"bc"``: ``"return"``, ``"outcome"``, ``"none"`` or a function of
            an episode (see the module docstring).
        feedback_temperature: ``"return"``: the temperature of the weights.
        negative_weight: ``"outcome"``: the weight of an episode that went badly.
        awr_beta: ``"awr"``: the temperature, in the model's reward units.
        awr_max_weight: ``"awr"``: the cap on a decision's weight.
        critic_epochs: ``"awr"``: value passes before each policy pass.
        awr_lambda: ``"awr"``: 1 compares Monte-Carlo returns with the critic; lower uses
            lambda-returns (0: the decision's reward plus the next state's value).
        awr_prior: ``"awr"``: ``"logger"`` (classic AWR: stay close to the logger) or
            ``"init"`` (stay close to ``init``; see
            :class:`rlagent.agents.OfflineConfig`).
        probe_feedback: First refit the model's belief probe (auxiliary bottleneck) to what
            the logged rewards reveal about the hidden features, by the env's
            ``feedback_targets`` (:mod:`rlagent.agents.probe_feedback`); the result's
            ``settings["probe"]`` records how well it then fits.
        probe_anchor: With ``probe_feedback``: weight of the squared distance of the probe's
            weights from the starting model's (keeps its reading of wording the logs lack).
        probe_patience: With ``probe_feedback``: stop refitting after this many passes
            without a better loss on the validation share (``None``: all 50 passes).
        gamma: Discount of the returns; ``None``: the model's own.
        val_share: Share of the episodes held out for validation (:func:`split_episodes`).
        seed: Seed of the split, the minibatches and a new model.
        device: Torch device.
        overwrite: Replace a model already saved at ``out``.
        settings: :func:`rlagent.make_ppo` keyword arguments of a new model (``init=None``
            only), e.g. ``{"encoder": "tiny-random", "n_envs": 1}``.
        logger: An SB3 ``Logger`` for ``offline/*`` curves.

    Returns:
        The :class:`OfflineResult`.

    Raises:
        DatasetError: No episodes or decisions, observations of another env, no env known, a
            bad weighting or split setting, or no training decision with a positive weight.
        rlagent.agents.OfflineLearningError: An unknown method or setting out of range.
        rlagent.agents.ModelEnvMismatchError: The initial model was trained on another env
            than the dataset's, or does not read its observations.
        FileExistsError: ``out`` is not empty and ``overwrite`` is not set.
    """
    from rlagent.agents import (
        OfflineConfig,
        OfflineLearningError,
        advantage_weights,
        fit_offline,
        load_model,
        make_ppo,
        offline_scores,
        save_model,
    )
    from rlagent.agents.offline_learning import (
        awr_targets,
        logged_action_probabilities,
        predicted_values,
        prior_ratios,
    )
    from rlagent.env_making import make_env
    from rlagent.evaluation import check_model_fits_env

    started = time.perf_counter()
    config = OfflineConfig(
        method=method,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        value_coef=value_coef,
        awr_beta=awr_beta,
        awr_max_weight=awr_max_weight,
        critic_epochs=critic_epochs,
        awr_lambda=awr_lambda,
        awr_prior=awr_prior,
    )
    if awr_prior == "init" and init is None:
        raise OfflineLearningError(
            "awr_prior='init' keeps the policy close to the model it starts from; pass init= "
            "(--init MODEL), or use awr_prior='logger'."
        )
    if init is not None and settings:
        raise OfflineLearningError(
            f"settings={dict(settings)} (--encoder, --encoder-layers) build a new model, but "
            f"init={os.fspath(init)!r} (--init) starts from a saved one; pass one or the other."
        )
    out = None if out is None else Path(out)
    _check_out(out, overwrite)
    source = os.fspath(dataset) if isinstance(dataset, str | os.PathLike) else None
    episodes = read_episodes(dataset) if source is not None else list(dataset)
    if not episodes or not sum(len(e) for e in episodes):
        raise DatasetError(
            f"No logged decisions in {source or 'the episodes given'}; log some episodes "
            "(rlagent logs export, rlagent collect) before learning from them."
        )
    init_model = None if init is None else load_model(init, device=device)
    init_spec = None if init_model is None else (init_model.rlagent_spec or {})
    env_id, env_kwargs = _resolve_env(dataset, env_id, env_kwargs, init_spec)
    if init_model is not None:
        _check_init_env(init, init_spec, env_id)
        model = init_model
    else:
        kwargs = dict(settings or {})
        model = make_ppo(env_id, env_kwargs=env_kwargs, seed=seed, device=device, **kwargs)
    gamma = float(model.gamma) if gamma is None else float(gamma)
    env = make_env(env_id, env_kwargs)
    try:
        check_model_fits_env(model, env)
        train_at, val_at = split_episodes(len(episodes), val_share, seed)
        train_eps = [episodes[i] for i in train_at]
        val_eps = [episodes[i] for i in val_at]
        train_data = logged_decisions(train_eps, model, env, gamma)
        val_data = logged_decisions(val_eps, model, env, gamma) if val_eps else None
        if probe_feedback:
            from rlagent.agents.probe_feedback import env_feedback_targets

            targets = env_feedback_targets(env)
    finally:
        env.close()

    def bc_weights(chosen: list[Episode]) -> np.ndarray:
        per_episode = feedback_weights(
            chosen,
            feedback_weight,
            temperature=feedback_temperature,
            negative_weight=negative_weight,
            reference=train_eps,
        )
        weights = np.repeat(per_episode, [len(e) for e in chosen])
        return weights / weights.mean() if weights.size and weights.mean() > 0 else weights

    def prior_of(data: Any) -> np.ndarray | None:
        if method != "awr" or awr_prior != "init":
            return None
        start = logged_action_probabilities(model.policy, data)
        return prior_ratios(data, start, awr_max_weight)

    probe_record = None
    if probe_feedback:
        probe_record = refit_probe(
            model,
            targets,
            train_data,
            val_data,
            seed,
            anchor=probe_anchor,
            patience=probe_patience,
        )

    train_prior = prior_of(train_data)
    val_prior = prior_of(val_data) if val_data is not None else None

    def awr_weights(data: Any, prior: np.ndarray | None) -> np.ndarray:
        values = predicted_values(model.policy, data)
        targets = awr_targets(data, values, awr_lambda)
        weights = advantage_weights(targets, values, beta=awr_beta, max_weight=awr_max_weight)
        return weights if prior is None else np.minimum(weights * prior, awr_max_weight)

    train_weights = bc_weights(train_eps) if method == "bc" else None
    if train_weights is not None and not (train_weights > 0).any():
        raise DatasetError(
            f"Every training episode has weight 0 under feedback_weight={feedback_weight!r} "
            "(none went well); use feedback_weight='return', or negative_weight > 0."
        )
    val_before = None
    if val_data is not None:
        before_weights = bc_weights(val_eps) if method == "bc" else awr_weights(val_data, val_prior)
        val_before = offline_scores(model.policy, val_data, before_weights)
    losses = fit_offline(
        model,
        train_data,
        config,
        weights=train_weights,
        prior=train_prior,
        seed=seed,
        logger=logger,
    )
    if method == "bc":
        train_scores = offline_scores(model.policy, train_data, train_weights)
        val_scores = (
            None
            if val_data is None
            else offline_scores(model.policy, val_data, bc_weights(val_eps))
        )
    else:
        train_scores = offline_scores(
            model.policy, train_data, awr_weights(train_data, train_prior)
        )
        val_scores = (
            None
            if val_data is None
            else offline_scores(model.policy, val_data, awr_weights(val_data, val_prior))
        )
    record = {
        **config.to_dict(),
        "feedback_weight": feedback_weight
        if isinstance(feedback_weight, str)
        else getattr(feedback_weight, "__name__", "function"),
        "feedback_temperature": float(feedback_temperature),
        "negative_weight": float(negative_weight),
        "gamma": gamma,
        "val_share": float(val_share),
        "seed": int(seed),
        "env_id": env_id,
        "env_kwargs": env_kwargs,
        "init": None if init is None else os.fspath(init),
        "probe": probe_record,
        "dataset": source,
    }
    model.rlagent_spec = {
        **(model.rlagent_spec or {}),
        "offline": {**record, "episodes": len(train_eps), "decisions": len(train_data)},
    }
    model_path = None if out is None else save_model(model, out)
    return OfflineResult(
        model_path=model_path,
        method=method,
        episodes=len(episodes),
        decisions=int(sum(len(e) for e in episodes)),
        train_episodes=len(train_eps),
        val_episode_ids=tuple(int(e.id) for e in val_eps),
        losses=tuple(losses),
        train_scores=train_scores,
        val_before=val_before,
        val_scores=val_scores,
        settings=record,
        wall_time_s=round(time.perf_counter() - started, 2),
        model=model,
    )
