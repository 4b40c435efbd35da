"""A trained agent served to live sessions: one batched forward pass for many decisions.

:class:`ServedAgent` loads a model directory (the safe format only), builds the env the model
reads, and decides on observations made by that env's live sessions
(``env.live_session()``: :class:`envs.customer_service.LiveDialogue`,
:class:`envs.recommendation.LiveRecommendation`). Raw observations become model input through
the model's own observation pipeline (:func:`rlagent.pipeline.observation_converter`), the
code that training and ``rlagent evaluate`` use; the deterministic action is the one
``rlagent evaluate`` takes (``model.predict(..., deterministic=True)``), decided here for a
whole batch of observations in one forward pass.

Example:
    >>> agent = ServedAgent.load("runs/cs/model")  # doctest: +SKIP
    >>> chat = agent.new_session()  # doctest: +SKIP
    >>> chat.customer("My card has not arrived yet.")  # doctest: +SKIP
    >>> decision = agent.decide([chat.observation()], [chat.action_masks()])[0]  # doctest: +SKIP
    >>> reply = chat.act(decision.action)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from rlagent.agents.loading import load_model
from rlagent.agents.saving import model_hash, resolve_model_dir
from rlagent.agents.slate import SlateDistribution
from rlagent.agents.trust import is_pickled_model
from rlagent.evaluation import check_model_fits_env
from rlagent.pipeline import ACTION_MASK_KEY, observation_converter, pipeline_of
from rlagent.serving.errors import (
    PickledModelError,
    ServingConfigError,
    SessionInputError,
    pickled_model_message,
)
from rlagent.serving.exploration import Exploration
from rlagent.serving.planning import LiveChatPlanners

__all__ = ["Decision", "ServedAgent", "model_hash"]

#: What :attr:`ServedAgent.kind` may be.
KINDS = ("dialogue", "slate")
#: The planners :meth:`ServedAgent.load` accepts (``None``: the policy alone).
PLANNERS = ("mcts",)


@dataclass(frozen=True)
class Decision:
    """One decision of a served agent.

    Attributes:
        action: The action: an action index (``kind == "dialogue"``), or the slate's candidate
            positions in slate order (``kind == "slate"``; a stopped slate repeats its first
            position, which shows once).
        action_name: The action's name (``action_names[action]``), or ``"slate"``.
        probabilities: The policy's action distribution, one probability per name in
            :attr:`ServedAgent.action_names`: for a dialogue the probability of each action
            (masked actions 0 when the model reads action masks); for a slate the probability
            of each candidate being shown first. With a planner: the search's visit share
            of each action. With exploration: the distribution the action was sampled from.
        probability: The probability of the chosen ``action`` under the distribution that
            chose it (for a slate, of the whole ordered slate; with a planner, its visit
            share): the propensity an interaction log records.
        value: The critic's value of the observation, in the env's reward units (the
            critic's output divided by the ``reward_scale`` it was trained with); with a
            planner, the search's root value. ``None`` where it cannot be computed: a critic
            that reads hidden simulator features a live session lacks, or a search with too
            few simulations.
    """

    action: int | list[int]
    action_name: str
    probabilities: dict[str, float]
    probability: float
    value: float | None


class ServedAgent:
    """A loaded agent, the env it reads, and batched decisions on live observations.

    Build it with :meth:`load`. Not thread-safe: call :meth:`decide` from one thread at a
    time (a service's batching loop).

    Attributes:
        model: The PPO model.
        env: The env built from ``env_id`` and ``env_kwargs``: it makes the live sessions and
            the observation pipeline; it is never stepped.
        kind: ``"dialogue"`` (customer service: ``session.customer(text)`` /
            ``session.act(action)``) or ``"slate"`` (recommendation:
            ``session.observation(candidates, ...)`` / ``session.record(...)``).
        action_names: Names of the entries of :attr:`Decision.probabilities`: the env's
            action names, or candidate positions ``"0"``, ``"1"``... for a slate.
        model_hash: sha256 of the model directory's files (:func:`model_hash`).
        settings: ``env_id``, ``env_kwargs``, ``planner``, ``simulations``, ``seed`` and
            ``device``, for the interaction log.
    """

    def __init__(
        self,
        model: Any,
        env: gym.Env,
        *,
        model_path: str | os.PathLike,
        settings: Mapping[str, Any],
        planner: LiveChatPlanners | None = None,
        exploration: Exploration | None = None,
    ) -> None:
        self.model = model
        self.env = env
        self.model_path = Path(model_path)
        self.model_hash = model_hash(self.model_path)
        self.settings = dict(settings)
        self.pipeline = pipeline_of(model)
        self.kind = _kind_of(env, self.settings["env_id"])
        base = env.unwrapped
        if self.kind == "dialogue":
            self.action_names: tuple[str, ...] = tuple(base.action_names)
        else:
            self.action_names = tuple(str(i) for i in range(int(base.n_candidates)))
        self._n_actions = int(env.action_space.n) if self.kind == "dialogue" else None
        self._convert = observation_converter(env, self.pipeline)
        value_scale = float((getattr(model, "rlagent_spec", None) or {}).get("reward_scale", 1.0))
        self._value_scale = 1.0 / value_scale
        self._planner = planner
        self.exploration = exploration
        self._rng = np.random.default_rng(exploration.seed if exploration else 0)

    # ------------------------------------------------------------------ building
    @classmethod
    def load(
        cls,
        model_path: str | os.PathLike,
        *,
        env_id: str | None = None,
        env_kwargs: Mapping[str, Any] | None = None,
        device: str = "cpu",
        planner: str | None = None,
        simulations: int = 64,
        seed: int = 0,
        encoder_dtype: str | None = None,
        exploration: Exploration | None = None,
    ) -> ServedAgent:
        """Load a model directory and build the env it serves.

        Args:
            model_path: A model directory (:func:`rlagent.agents.save_model`, ``rlagent
                export``). A pickled ``.zip`` is refused (loading it would run its code).
            env_id: The env to serve; ``None``: the env the model was trained on
                (``rlagent_spec["env_id"]``).
            env_kwargs: The env's keyword arguments; ``None``: the ones saved with the model
                when ``env_id`` is its own (else none).
            device: Torch device of the model.
            planner: ``None`` (the policy alone) or ``"mcts"`` (plan each decision of a
                dialogue; see :mod:`rlagent.serving.planning`).
            simulations: MCTS simulations per decision (with ``planner="mcts"``).
            seed: Seed of each session's planner (with ``planner="mcts"``).
            encoder_dtype: ``None`` (as the model was saved), ``"auto"``, ``"fp32"``,
                ``"bf16"`` or ``"int8"``. int8 is used only where it agrees with fp32 on the
                env's test observations (:func:`rlagent.agents.resolve_encoder_dtype`, about two
                minutes for MiniLM on a 2-core CPU).
            exploration: ``None`` (the most likely action, as ``rlagent evaluate``) or an
                :class:`~rlagent.serving.exploration.Exploration`: each dialogue decision is
                sampled from that distribution, which its :class:`Decision` reports.

        Returns:
            The served agent.

        Raises:
            PickledModelError: ``model_path`` is a pickled model.
            ServingConfigError: No env id is given or saved, the env has no live sessions,
                the planner cannot plan for it (the message says which do), or exploration
                is asked for a slate env or with a planner.
            rlagent.agents.ModelFileError: ``model_path`` is not a readable model directory.
            rlagent.agents.ModelEnvMismatchError: The model does not read the env's
                observations.
            rlagent.agents.EncoderDtypeError: int8 was asked for and disagrees with fp32.
        """
        path = Path(model_path)
        if path.is_file() and is_pickled_model(path):
            raise PickledModelError(pickled_model_message(path))
        if planner is not None and planner not in PLANNERS:
            raise ServingConfigError(
                f"planner={planner!r} is unknown; expected None (the policy alone) or 'mcts'."
            )
        if isinstance(simulations, bool) or not isinstance(simulations, int) or simulations < 1:
            raise ServingConfigError(
                f"simulations={simulations!r}; expected an int >= 1 (MCTS simulations per "
                "decision)."
            )
        if exploration is not None and not isinstance(exploration, Exploration):
            raise ServingConfigError(
                f"exploration={exploration!r}; pass None or Exploration(epsilon=...) / "
                "Exploration(temperature=...)."
            )
        if exploration is not None and planner is not None:
            raise ServingConfigError(
                "exploration samples the policy's own decisions; with planner='mcts' the "
                "search decides. Serve with one of them, not both."
            )
        path = resolve_model_dir(path)
        model = load_model(path, device=device)
        spec = getattr(model, "rlagent_spec", None) or {}
        saved_id = spec.get("env_id")
        if env_id is None:
            env_id = saved_id
            if not env_id:
                raise ServingConfigError(
                    f"The model at {path} records no env id (it was built on an env instance); "
                    "pass env_id= (--env ID) to say which env to serve."
                )
        if env_kwargs is None:
            env_kwargs = dict(spec.get("env_kwargs") or {}) if env_id == saved_id else {}
        from rlagent.env_making import make_env

        env = make_env(env_id, env_kwargs)
        check_model_fits_env(model, env)
        if encoder_dtype is not None:
            from rlagent.agents import resolve_encoder_dtype

            resolve_encoder_dtype(model, env_id, encoder_dtype, env_kwargs=env_kwargs)
        settings = {
            "env_id": env_id,
            "env_kwargs": dict(env_kwargs),
            "planner": planner,
            "simulations": simulations if planner else None,
            "seed": seed if planner else None,
            "device": str(model.device),
            "encoder_dtype": encoder_dtype,
            "exploration": exploration.describe() if exploration else None,
        }
        if exploration is not None and _kind_of(env, env_id) != "dialogue":
            raise ServingConfigError(
                f"exploration serves dialogues (rlagent/CustomerService-v0 and envs like it); "
                f"{env_id} serves slates: record exploring slate logs with rlagent collect "
                "MODEL --temperature T instead."
            )
        planners = None
        if planner == "mcts":
            if _kind_of(env, env_id) != "dialogue":
                raise ServingConfigError(
                    f"planner='mcts' plans live chats only (rlagent/CustomerService-v0 and envs "
                    f"like it); {env_id} serves slates, whose candidates are free texts, not "
                    "items the planner's model env could simulate: serve it without a planner."
                )
            from rlagent.planning import bundled_planner_settings

            planners = LiveChatPlanners(
                model,
                env,
                simulations=simulations,
                seed=seed,
                settings=bundled_planner_settings(env_id),
            )
        return cls(
            model,
            env,
            model_path=path,
            settings=settings,
            planner=planners,
            exploration=exploration,
        )

    def new_session(self) -> Any:
        """A new live session of the served env (``env.unwrapped.live_session()``)."""
        return self.env.unwrapped.live_session()

    # ------------------------------------------------------------------ deciding
    def decide(
        self,
        observations: Sequence[Mapping[str, Any]],
        masks: Sequence[np.ndarray | None] | None = None,
        *,
        sessions: Sequence[Any] | None = None,
    ) -> list[Decision]:
        """Decide on a batch of live observations in one forward pass.

        Args:
            observations: Raw observations from live sessions (``session.observation(...)``).
            masks: One action mask per observation (``session.action_masks()``), or ``None``
                for all actions allowed. As in ``rlagent evaluate``, a mask changes the
                decision only for a model trained with action masks (its pipeline's
                ``"action_mask"`` entry); other models ignore it.
            sessions: With ``planner="mcts"``: the session each observation came from (the
                planner searches from the whole chat, not one observation). Unused without a
                planner.

        Returns:
            One :class:`Decision` per observation, in order.

        Raises:
            SessionInputError: An observation does not fit the env's observation space, a
                mask has the wrong length, the lists differ in length, or (with a planner)
                sessions are missing or a session does not await the agent.
        """
        observations = list(observations)
        if not observations:
            return []
        masks = [None] * len(observations) if masks is None else list(masks)
        if len(masks) != len(observations):
            raise SessionInputError(
                f"Got {len(masks)} masks for {len(observations)} observations; pass one mask "
                "(or None) per observation, or masks=None."
            )
        pairs = enumerate(zip(observations, masks, strict=True))
        raw = [self._checked(i, obs, mask) for i, (obs, mask) in pairs]
        if self._planner is not None:
            return self._plan(raw, sessions)
        if self.exploration is not None:
            n = int(self._n_actions or 0)
            allowed = [None if m is None else _mask(i, m, n) > 0 for i, m in enumerate(masks)]
            return self._forward(raw, allowed)
        return self._forward(raw)

    def _checked(self, index: int, observation: Any, mask: Any) -> dict[str, Any]:
        space = self.env.observation_space
        if not isinstance(observation, Mapping) or not space.contains(dict(observation)):
            raise SessionInputError(
                f"Observation {index} does not fit {self.settings['env_id']}'s observation "
                "space; pass what the served env's live session returns "
                "(agent.new_session().observation(...))."
            )
        observation = dict(observation)
        if self.pipeline.action_mask:
            n = int(self.env.action_space.n)
            allowed = np.ones(n, dtype=np.float32) if mask is None else _mask(index, mask, n)
            observation[ACTION_MASK_KEY] = allowed
        elif mask is not None and self._n_actions is not None:
            _mask(index, mask, self._n_actions)
        return observation

    def _forward(
        self, raw: list[dict[str, Any]], allowed: list[np.ndarray | None] | None = None
    ) -> list[Decision]:
        converted = [self._convert(obs) for obs in raw]
        batch = {key: np.stack([c[key] for c in converted]) for key in converted[0]}
        policy = self.model.policy
        policy.set_training_mode(False)
        tensor, _ = policy.obs_to_tensor(batch)
        with torch.no_grad():
            # What model.predict does (policy.get_distribution, then the mode), with the
            # critic's value from the same features.
            latent_pi, latent_vf = policy._latents(tensor)
            distribution = policy.masked_distribution(
                policy._get_action_dist_from_latent(latent_pi), tensor
            )
            actions = distribution.get_actions(deterministic=True)
            log_probs = distribution.log_prob(actions)
            values = policy.value_net(latent_vf).reshape(-1)
            if isinstance(distribution, SlateDistribution):
                n = len(self.action_names)
                probs = torch.softmax(distribution.logits[:, :n].float(), dim=-1)
            else:
                probs = distribution.distribution.probs.float()
        probs = probs.cpu().numpy().astype(np.float64)
        actions_np = actions.cpu().numpy().reshape(len(raw), -1)
        chosen = torch.exp(log_probs.float()).cpu().numpy().astype(np.float64)
        if self.exploration is not None and allowed is not None:
            logits = distribution.distribution.logits.double().cpu().numpy()
            probs = self.exploration.distributions(
                logits,
                actions_np[:, 0],
                allowed,
                model_reads_masks=self.pipeline.action_mask,
            )
            actions_np = np.array([[self._rng.choice(len(p), p=p)] for p in probs])
            chosen = probs[np.arange(len(raw)), actions_np[:, 0]]
        values_np = values.float().cpu().numpy().astype(np.float64) * self._value_scale
        hidden_critic = self.pipeline.critic_reads_privileged
        decisions = []
        for i in range(len(raw)):
            value = None if hidden_critic else float(values_np[i])
            decisions.append(self._decision(actions_np[i], probs[i], float(chosen[i]), value))
        return decisions

    def _decision(
        self, action: np.ndarray, probs: np.ndarray, chosen: float, value: float | None
    ) -> Decision:
        names = self.action_names
        probabilities = {name: float(p) for name, p in zip(names, probs, strict=True)}
        if self.kind == "dialogue":
            index = int(action[0])
            return Decision(index, names[index], probabilities, chosen, value)
        return Decision([int(p) for p in action], "slate", probabilities, chosen, value)

    def _plan(self, raw: list[dict[str, Any]], sessions: Sequence[Any] | None) -> list[Decision]:
        if sessions is None or len(sessions) != len(raw):
            got = "none" if sessions is None else str(len(sessions))
            raise SessionInputError(
                f"planner='mcts' searches from each chat's whole history: pass sessions= (the "
                f"live session of each observation), got {got} for {len(raw)} observations."
            )
        for i, session in enumerate(sessions):
            if getattr(session, "whose_turn", None) != "agent":
                raise SessionInputError(
                    f"Session {i} does not await the agent (whose_turn is "
                    f"{getattr(session, 'whose_turn', None)!r}); decide after the customer "
                    "writes."
                )
        decisions = []
        for session in sessions:
            planned = self._planner.decide(session)
            value = planned.value if np.isfinite(planned.value) else None
            probs = planned.visits
            decisions.append(
                self._decision(
                    np.array([planned.action]), probs, float(probs[planned.action]), value
                )
            )
        return decisions


def _mask(index: int, mask: Any, n: int) -> np.ndarray:
    array = np.asarray(mask).reshape(-1)
    if array.shape != (n,):
        raise SessionInputError(
            f"Mask {index} has {array.size} entries; expected one per action ({n}), as "
            "session.action_masks() returns."
        )
    return array.astype(np.float32)


def _kind_of(env: gym.Env, env_id: str) -> str:
    session_maker = getattr(env.unwrapped, "live_session", None)
    if not callable(session_maker):
        raise ServingConfigError(
            f"{env_id} has no live_session(), so live input cannot be turned into its "
            "observations; serve a model of an env that has one (rlagent/CustomerService-v0, "
            "rlagent/Recommendation-v0), or give the env a live_session() (see "
            "envs.customer_service.live)."
        )
    session = session_maker()
    if callable(getattr(session, "record", None)):
        return "slate"
    if all(callable(getattr(session, name, None)) for name in ("customer", "act")) and isinstance(
        env.action_space, gym.spaces.Discrete
    ):
        return "dialogue"
    raise ServingConfigError(
        f"{env_id}'s live session {type(session).__name__} is neither a chat (customer/act "
        "with Discrete actions) nor a slate session (observation/record); the service serves "
        "those two kinds."
    )
