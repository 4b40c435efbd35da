"""A belief learned from text: hidden fields drawn from what the agent reads.

:class:`~rlagent.planning.ParticleBelief` weights prior draws by the environment's own
likelihood of the recorded history. For the customer-service env that likelihood scores the
wording ids of each customer turn, so on a dataset it looks the evaluation row's label up: a
perfect-model upper bound, not what an agent facing a real customer could do.
:class:`LearnedBelief` reads instead: at each real step a *predictor* (by default the policy's
auxiliary probe, :func:`probe_predictor`) turns the current observation into probabilities of
the env's privileged features (``[calm, frustrated, angry, specified, patience left,
group...]`` for customer service), and every particle is drawn from that posterior by the env's
``sample_hidden(state, rng, posterior=...)``; the dynamics from there on are the env's model.

The model env a learned belief plans on is built from the settings saved with the model
(:func:`training_env`: ``rlagent_spec["env_id"]`` and ``["env_kwargs"]``), never from the
evaluation env's dataset or split: the evaluation env only supplies the observable state (the
transcript, the turn, the actions).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from rlagent.pipeline import PRIVILEGED_KEY, observation_converter, pipeline_of
from rlagent.planning.config import check_belief
from rlagent.planning.model import (
    BeliefUnavailableError,
    ModelEnvActionsError,
    PlanningConfigError,
    PlanningStateError,
)

__all__ = [
    "LearnedBelief",
    "check_probe",
    "check_same_actions",
    "probe_predictor",
    "resolve_belief",
    "takes_posterior",
    "training_env",
]

_TRAIN_WITH_PROBE = (
    "train with auxiliary targets (auxiliary.coef > 0 in the training config, as the bundled "
    "CustomerService-v0 config does), or pass belief='env' (--belief env): the env's exact "
    "likelihood, a perfect-model upper bound that reads the evaluation data's labels"
)


def takes_posterior(env: Any) -> bool:
    """Whether ``env``'s ``sample_hidden`` accepts ``posterior=`` (a learned belief's seam)."""
    sample = getattr(getattr(env, "unwrapped", env), "sample_hidden", None)
    if not callable(sample):
        return False
    try:
        return "posterior" in inspect.signature(sample).parameters
    except (TypeError, ValueError):
        return False


def resolve_belief(belief: str | None, env: Any, *, oracle: bool = False) -> str:
    """The belief a planning agent on ``env`` uses: ``"learned"``, ``"env"`` or ``"oracle"``.

    Args:
        belief: ``"learned"``, ``"env"`` or ``None`` for the env's default: ``"learned"``
            when its ``sample_hidden`` takes a posterior (customer service), else ``"env"``
            (the recommendation env, whose likelihood reads only the clicks the agent saw).
        env: The env the agent acts in.
        oracle: Planning on the true hidden state (then the belief is ``"oracle"``).

    Raises:
        PlanningConfigError: ``belief`` is not one of the beliefs.
    """
    belief = check_belief(belief)
    if oracle:
        return "oracle"
    if belief is None:
        return "learned" if takes_posterior(env) else "env"
    return belief


class LearnedBelief:
    """Particles of the hidden fields drawn from a posterior predicted from the observation.

    At each real step the observable state's raw observation (rendered by ``env``; no
    observation holds a hidden field) goes through ``predict``, which returns a probability
    for each of the env's privileged features; ``num_particles`` states are then drawn by
    ``env.sample_hidden(observable_state, rng, posterior=...)``. Nothing is weighted: the env's
    ``log_likelihood`` is never called, so a transcript's wording ids are never looked up.

    Args:
        env: The (unwrapped) model env: it provides ``sample_hidden(state, rng,
            posterior=...)``, ``set_state`` and ``observe``. Its intents are the ones drawn.
        predict: Maps a raw observation of ``env`` to the posterior probabilities
            (:func:`probe_predictor` builds it from a model's auxiliary probe).
        num_particles: Particles drawn per update.

    Attributes:
        particles: The current particles (full states of ``env``).
        posterior: The predicted probabilities of the latest update (a float64 array).
        effective_sample_size: ``num_particles``: every particle is an independent draw from
            the posterior, with equal weight (:class:`ParticleBelief`'s diagnostic, for
            comparison).
    """

    def __init__(
        self,
        env: Any,
        predict: Callable[[Any], Any],
        *,
        num_particles: int = 64,
    ) -> None:
        env = getattr(env, "unwrapped", env)
        for name in ("set_state", "observe"):
            if not callable(getattr(env, name, None)):
                raise PlanningStateError(
                    f"LearnedBelief: {type(env).__name__} has no {name}() method; a learned "
                    "belief renders the observable state with set_state() and observe()."
                )
        if not takes_posterior(env):
            raise BeliefUnavailableError(
                f"LearnedBelief: {type(env).__name__}.sample_hidden takes no posterior=...; a "
                "learned belief draws the hidden fields from a posterior over the env's "
                "privileged features (see docs/custom-envs.md); pass belief='env' to weight "
                "prior draws by the env's log_likelihood instead."
            )
        if not isinstance(num_particles, int) or num_particles < 1:
            raise PlanningConfigError(
                f"LearnedBelief: num_particles={num_particles!r}, expected an int >= 1."
            )
        self.env = env
        self.predict = predict
        self.num_particles = num_particles
        self.particles: tuple[Any, ...] = ()
        self.posterior = np.zeros(0)
        self.effective_sample_size = float("nan")

    def observe(self, observable_state: Any) -> Any:
        """The raw observation of a state whose hidden fields are unknown.

        The env renders it from a placeholder (a prior draw with a fixed generator): an
        observation holds no hidden field, so any placeholder gives the same one.
        """
        env = self.env
        placeholder = env.sample_hidden(observable_state, np.random.default_rng(0))
        env.set_state(placeholder)
        return env.observe()

    def update(self, observable_state: Any, rng: np.random.Generator) -> tuple[Any, ...]:
        """Predict the posterior from the observation and draw particles from it.

        Args:
            observable_state: The current state with its hidden fields blanked (``hide``).
            rng: Source of the draws.

        Returns:
            The new particles (also stored in :attr:`particles`).
        """
        posterior = np.asarray(self.predict(self.observe(observable_state)), dtype=np.float64)
        sample = self.env.sample_hidden
        self.particles = tuple(
            sample(observable_state, rng, posterior=posterior) for _ in range(self.num_particles)
        )
        self.posterior = posterior
        self.effective_sample_size = float(self.num_particles)
        return self.particles


def probe_predictor(model: Any, env: Any) -> Callable[[Any], np.ndarray]:
    """The posterior a model's auxiliary probe predicts from a raw observation of ``env``.

    The observation goes through the model's own observation pipeline
    (:func:`rlagent.pipeline.observation_converter`; the hidden ``"privileged"`` entry is
    zeros, the action mask ``env``'s current one), the actor's features extractor and the
    auxiliary head; the result is the sigmoid of each logit, one probability per privileged
    feature.

    Args:
        model: A text model built with auxiliary targets (the env's privileged features).
        env: The env whose raw observations are converted (the planner's model env).

    Returns:
        A function from a raw observation to a float64 array ``[n_privileged]``.

    Raises:
        BeliefUnavailableError: ``model`` is not a model with an auxiliary probe of the
            privileged features.
    """
    check_probe(model)
    import torch

    policy = model.policy
    convert = observation_converter(getattr(env, "unwrapped", env), pipeline_of(model))

    def predict(observation: Any) -> np.ndarray:
        tensor, _ = policy.obs_to_tensor(convert(observation))
        with torch.no_grad():
            features = policy.extract_features(tensor, policy.pi_features_extractor)
            if isinstance(features, tuple):  # separate actor and critic extractors
                features = features[0]
            logits = policy.auxiliary_logits(features)
        return torch.sigmoid(logits.float())[0].cpu().numpy().astype(np.float64)

    return predict


def check_probe(model: Any) -> None:
    """Raise :class:`BeliefUnavailableError` unless ``model`` has a probe of the hidden state.

    Args:
        model: A policy (SB3 model), an evaluator, or ``None``.
    """
    if model is None:
        raise BeliefUnavailableError(
            "belief='learned' reads the hidden fields from a trained model's auxiliary probe, "
            "and this planner has no model (random rollouts); pass a model trained with "
            "auxiliary targets, or belief='env' (the env's exact likelihood, a perfect-model "
            "upper bound that reads the evaluation data's labels)."
        )
    policy = getattr(model, "policy", None)
    spec = getattr(model, "rlagent_spec", None)
    if policy is None or spec is None or not callable(getattr(policy, "auxiliary_logits", None)):
        raise BeliefUnavailableError(
            f"belief='learned' reads the hidden fields from a text model's auxiliary probe; "
            f"{type(model).__name__} is not a model built by rlagent.make_ppo; pass one, or "
            "belief='env' (the env's exact likelihood, a perfect-model upper bound)."
        )
    target = pipeline_of(model).auxiliary_targets
    if getattr(policy, "auxiliary_targets", None) is None or target != PRIVILEGED_KEY:
        raise BeliefUnavailableError(
            "belief='learned' reads the hidden fields from the policy's auxiliary probe, and "
            f"this model has {'none' if target is None else 'one of ' + repr(target)} "
            f"(not of the env's privileged features); {_TRAIN_WITH_PROBE}."
        )


def training_env(model: Any) -> gym.Env:
    """The env ``model`` was trained on, built from the settings saved with it.

    Args:
        model: A model with ``rlagent_spec`` naming ``env_id`` (and ``env_kwargs``).

    Returns:
        ``rlagent.env_making.make_env(env_id, env_kwargs)``: the same id, dataset, split and
        other settings as in training.

    Raises:
        BeliefUnavailableError: The model does not record the env it was trained on.
    """
    from rlagent.env_making import make_env

    spec = getattr(model, "rlagent_spec", None) or {}
    env_id = spec.get("env_id")
    if not env_id:
        raise BeliefUnavailableError(
            "belief='learned' plans on the env the model was trained on, and this model does "
            "not record it (rlagent_spec['env_id'] is empty: it was built on an env instance "
            "without an id); pass model_env=gym.make(ID, **training_kwargs), or belief='env'."
        )
    return make_env(env_id, spec.get("env_kwargs") or {})


def check_same_actions(model_env: Any, env: Any) -> None:
    """Raise :class:`ModelEnvActionsError` unless the two envs have the same actions.

    Compares the action spaces and, when both envs name their actions (``action_names``, e.g.
    a customer-service env's ``resolve_<group>`` list), the names in order.

    Args:
        model_env: The planner's model env (built from the model's training settings).
        env: The env the agent acts in.
    """
    model_env = getattr(model_env, "unwrapped", model_env)
    env = getattr(env, "unwrapped", env)
    detail = None
    if model_env.action_space != env.action_space:
        detail = f"action space {model_env.action_space} vs {env.action_space}"
    else:
        ours = getattr(model_env, "action_names", None)
        theirs = getattr(env, "action_names", None)
        if ours is not None and theirs is not None and tuple(ours) != tuple(theirs):
            i = next(k for k, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b)
            detail = f"action {i} is {ours[i]!r} vs {theirs[i]!r}"
    if detail is not None:
        raise ModelEnvActionsError(
            "The planner's model env (built from the model's training settings) and the "
            f"evaluation env have different actions: {detail}; evaluate on an env with the "
            "training env's groups, or pass belief='env'."
        )
