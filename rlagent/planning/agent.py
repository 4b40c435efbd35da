"""An agent that plans every action with MCTS from the environment's current state.

What the planner may see: the observable fields of the environment's state (everything the
agent has observed, recorded in the state) and a *model* of how users behave (an env's
dynamics, used through a private copy). What it may not see, unless ``oracle=True``: the
fields named in the state class's ``HIDDEN`` (a customer's intent and patience, a user's
interests and time budget). Those are blanked before the planner touches the state, and every
simulation plays out hidden values drawn from a belief instead:

* ``belief="learned"`` (the default where the env supports it, as customer service does): a
  :class:`~rlagent.planning.LearnedBelief` draws them from what the model reads in the text
  (its auxiliary probe), and the model env is the one the model was trained on, rebuilt from
  the settings saved with it; the evaluation env only supplies the observable state.
* ``belief="env"``: a :class:`~rlagent.planning.ParticleBelief` weights prior draws by the
  evaluation env's own likelihood. For customer service that reads the wording ids of the
  transcript, i.e. the evaluation data's labels: a perfect-model upper bound. The
  recommendation env's default (its likelihood reads only the clicks the agent saw).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np

from rlagent.pipeline import (
    ACTION_MASK_KEY,
    PRIVILEGED_KEY,
    observation_converter,
    pipeline_of,
)
from rlagent.planning.belief import BeliefModel, ParticleBelief, hide
from rlagent.planning.config import MCTSConfig, check_belief, check_settings, split_settings
from rlagent.planning.env_model import EnvModel
from rlagent.planning.evaluators import RandomRolloutEvaluator
from rlagent.planning.learned_belief import (
    LearnedBelief,
    check_probe,
    check_same_actions,
    probe_predictor,
    resolve_belief,
    takes_posterior,
    training_env,
)
from rlagent.planning.model import BeliefUnavailableError, PlanningStateError
from rlagent.planning.policy_evaluator import PolicyEvaluator
from rlagent.planning.search import MCTS, SearchResult

__all__ = ["DEFAULT_SIMULATIONS", "MCTSAgent", "make_planning_agent"]

#: Simulations per decision of :func:`make_planning_agent` when nothing else sets them.
DEFAULT_SIMULATIONS = 100


class MCTSAgent:
    """Choose each action by searching from the current state of ``env``.

    It has the baseline interface used by evaluation (``reset(seed)``, ``act(observation)``)
    and an SB3-like ``predict(observation, deterministic=True) -> (action, None)``.

    Args:
        policy: What scores leaves: a Stable-Baselines3 actor-critic model (priors from its
            action distribution, value from its critic; observations tokenized as the model
            expects), any evaluator with ``evaluate(state, rng)``, or ``None`` for random
            rollouts of at most ``rollout_steps`` steps.
        model: The planning model (an :class:`EnvModel`); ``None`` builds one on the model
            env (see ``belief``), with ``reward_shaping`` when ``policy`` was trained with it.
            Given, its ``env`` is the model env of a learned belief.
        config: Search settings (:class:`MCTSConfig`).
        env: The environment the agent acts in; its current state is read (``get_state``)
            at every ``act`` and never modified.
        seed: Seed of the agent's generator (re-seeded by ``reset(seed)``).
        oracle: Plan on the true hidden state of ``env`` (an upper bound, not a fair agent);
            ``belief`` is then unused.
        belief: ``"learned"``: particles drawn from the posterior that ``policy``'s auxiliary
            probe reads from the observation (:class:`LearnedBelief`), on a model env built
            from the settings the model was trained with (``rlagent_spec["env_id"]`` and
            ``["env_kwargs"]``); needs a model trained with auxiliary targets and an env whose
            ``sample_hidden`` takes ``posterior=``. ``"env"``: prior draws weighted by
            ``env``'s own ``log_likelihood`` (:class:`ParticleBelief`), planning on a copy of
            ``env``; for customer service a perfect-model upper bound (it reads the labels of
            the evaluation data). ``None``: ``"learned"`` where ``env`` supports it, else
            ``"env"`` (:func:`rlagent.planning.resolve_belief`).
        model_env: With ``belief="learned"``: the env to plan on instead of the one rebuilt
            from the model's settings (it is copied, not stepped).
        num_particles: Belief particles (unused with ``oracle=True``).
        num_proposals: Prior draws weighted per update of the ``"env"`` belief.
        rollout_steps: Length limit of random rollouts when ``policy`` is ``None``.
        expected_rewards: Plan on each simulated step's expected reward (the environment's
            ``expected_reward``) instead of a sampled one, when ``model`` is built here;
            ``None`` (default) does so whenever the model env provides it.

    Attributes:
        belief: The :class:`LearnedBelief` or :class:`ParticleBelief` (``None`` with
            ``oracle=True``).
        belief_name: ``"learned"``, ``"env"`` or ``"oracle"``.
        env_model: The planning model; ``env_model.env`` is the model env.
        last_result: The :class:`SearchResult` of the latest decision.

    Raises:
        BeliefUnavailableError: ``belief="learned"`` without a model whose auxiliary probe
            predicts the env's privileged features, or on an env that takes no posterior.
        ModelEnvActionsError: The model env and ``env`` have different actions.
    """

    def __init__(
        self,
        policy: Any,
        model: EnvModel | None = None,
        config: MCTSConfig | None = None,
        *,
        env: gym.Env,
        seed: int | None = None,
        oracle: bool = False,
        belief: str | None = None,
        model_env: gym.Env | None = None,
        num_particles: int = 64,
        num_proposals: int = 256,
        rollout_steps: int = 20,
        expected_rewards: bool | None = None,
    ) -> None:
        if env is None or not callable(getattr(env.unwrapped, "get_state", None)):
            raise PlanningStateError(
                f"MCTSAgent: env={env!r} has no get_state(); pass the environment the agent "
                "acts in (its unwrapped env must implement get_state/set_state)."
            )
        self.env = env
        self.oracle = bool(oracle)
        self.belief_name = resolve_belief(belief, env, oracle=self.oracle)
        learned = self.belief_name == "learned"
        if learned:
            if not takes_posterior(env):
                raise BeliefUnavailableError(
                    f"belief='learned': {type(env.unwrapped).__name__}.sample_hidden takes no "
                    "posterior=..., so no hidden fields can be drawn from what the model reads "
                    "(docs/custom-envs.md); pass belief='env' (the env's own likelihood)."
                )
            check_probe(policy)
        if model is None:
            plan_env: gym.Env = env
            if learned:
                plan_env = model_env if model_env is not None else training_env(policy)
                check_same_actions(plan_env, env)
            spec = getattr(policy, "rlagent_spec", None) or {}
            # A critic trained on shaped rewards values shaped returns: plan on them too.
            if expected_rewards is None:
                expected_rewards = callable(getattr(plan_env.unwrapped, "expected_reward", None))
            model = EnvModel(
                plan_env,
                copy_env=not learned or model_env is not None,
                reward_shaping=bool(spec.get("reward_shaping")),
                expected_rewards=expected_rewards,
            )
        elif learned:
            if getattr(model, "env", None) is None:
                raise PlanningStateError(
                    f"MCTSAgent: belief='learned' draws particles on the model's env, and "
                    f"{type(model).__name__} has no .env; pass an EnvModel, or model=None."
                )
            check_same_actions(model.env, env)
        self.env_model = model
        self.config = config if config is not None else MCTSConfig()
        if self.oracle:
            self.belief: LearnedBelief | ParticleBelief | None = None
            self._belief_model = None
            planning_model: Any = self.env_model
        else:
            if learned:
                self.belief = LearnedBelief(
                    model.env,
                    probe_predictor(policy, model.env),
                    num_particles=num_particles,
                )
            else:
                self.belief = ParticleBelief(
                    env.unwrapped, num_particles=num_particles, num_proposals=num_proposals
                )
            self._belief_model = BeliefModel(self.env_model)
            planning_model = self._belief_model
        # The observations the policy reads are rendered by the model env.
        observed_env = model.env if learned else env
        self.evaluator = _make_evaluator(
            policy, planning_model, observed_env, self.config.discount, rollout_steps
        )
        self.search = MCTS(planning_model, self.config, self.evaluator)
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._discrete = isinstance(env.action_space, gym.spaces.Discrete)
        self.last_result: SearchResult | None = None

    def reset(self, seed: int | None = None) -> None:
        """Start a new episode: forget the tree; re-seed when ``seed`` is given."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self.search.reset()
        self.last_result = None

    def act(self, observation: Any = None) -> Any:
        """Plan from the environment's current state and return the action to take.

        Args:
            observation: The raw observation (unused: the planner reads the observable part
                of the environment's state, which holds the same information and the history).

        Returns:
            An environment action (``int`` for ``Discrete``, a numpy array for
            ``MultiDiscrete``).
        """
        rng = self._rng
        state = self.env.unwrapped.get_state()
        if self.oracle:
            root = state
        else:
            particles = self.belief.update(hide(state), rng)
            self._belief_model.set_particles(particles)
            root = self._belief_model.root()
        self.last_result = self.search.search(root, rng)
        action = self.env_model.to_env_action(self.last_result.action)
        return int(action) if self._discrete else action.copy()

    def predict(
        self,
        observation: Any = None,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[Any, None]:
        """SB3-style ``(action, None)``; the search itself is deterministic given the seed."""
        return self.act(observation), None


def _make_evaluator(
    policy: Any, planning_model: Any, env: gym.Env, discount: float, rollout_steps: int
) -> Any:
    if policy is None:
        return RandomRolloutEvaluator(planning_model, discount=discount, max_steps=rollout_steps)
    if callable(getattr(policy, "evaluate", None)):
        return policy
    preprocess = None
    value_scale = 1.0
    observe = planning_model.observe
    spec = getattr(policy, "rlagent_spec", None)
    if spec is not None:
        pipeline = pipeline_of(policy)
        preprocess = observation_converter(env.unwrapped, pipeline)
        # A critic trained on scaled rewards predicts scaled returns.
        value_scale = 1.0 / float(spec.get("reward_scale", 1.0))
        privileged = pipeline.critic_reads_privileged
        masked = pipeline.action_mask
        if privileged or masked:
            # Entries of the simulated state, not of the real env's current one: its hidden
            # features for a privileged critic (the true ones with oracle=True, a belief
            # particle's otherwise, the particles' mean at the root), and its action mask.
            def observe(state: Any) -> Any:
                obs = dict(planning_model.observe(state))
                if privileged:
                    obs[PRIVILEGED_KEY] = planning_model.privileged(state)
                if masked:
                    obs[ACTION_MASK_KEY] = planning_model.action_mask(state)
                return obs

    return PolicyEvaluator(policy, observe, preprocess=preprocess, value_scale=value_scale)


def make_planning_agent(
    ppo_model: Any,
    env: gym.Env,
    *,
    simulations: int | None = None,
    seed: int | None = None,
    oracle: bool = False,
    belief: str | None = None,
    model_env: gym.Env | None = None,
    config: MCTSConfig | None = None,
    settings: Mapping[str, Any] | None = None,
) -> MCTSAgent:
    """An :class:`MCTSAgent` for ``env``, guided by a trained model when one is given.

    With a model: PUCT on the policy's priors, leaf values from its critic, the model's
    discount (``gamma``), leaves batched 8 at a time with virtual loss. Without one: UCT with
    random rollouts of at most 20 steps, discount 1. Both reuse the tree between steps and
    widen chance outcomes progressively (``chance_widening_c=1.0``), since the bundled
    environments rarely repeat an outcome (fresh candidates, noisy text).

    Args:
        ppo_model: A PPO model from :func:`rlagent.make_ppo` / :func:`rlagent.load`, or
            ``None``.
        env: The environment the agent will act in.
        simulations: Simulations per decision; given, it wins over ``config`` and
            ``settings`` (as ``--simulations`` wins over ``--planner-config``). ``None``: their
            ``num_simulations``, else :data:`DEFAULT_SIMULATIONS`.
        seed: Seed of the planner (episodes are re-seeded by ``reset(seed)``).
        oracle: Plan on the true hidden state (report as an upper bound).
        belief: ``"learned"`` (hidden fields from what the model reads; the model env built
            from its training settings), ``"env"`` (the evaluation env's own likelihood; for
            customer service a perfect-model upper bound that reads the labels), or ``None``:
            ``settings["belief"]`` if given, else ``"learned"`` where ``env`` supports it and
            ``"env"`` elsewhere (see :class:`MCTSAgent`).
        model_env: With ``belief="learned"``, the env to plan on instead of the one rebuilt
            from the model's training settings.
        config: Full search settings; overrides the defaults above.
        settings: :class:`MCTSConfig` fields that change the defaults above (or ``config``),
            e.g. ``{"max_depth": 1, "common_random_numbers": True}``, and ``"belief"``; what
            ``rlagent evaluate --planner-config FILE.yaml`` reads.

    Returns:
        The agent (``reset(seed)``, ``act(observation)``, ``predict(observation)``).

    Raises:
        PlanningConfigError: ``settings`` names a field that :class:`MCTSConfig` lacks, or a
            value out of range, or ``belief`` is not a belief's name.
        BeliefUnavailableError: The learned belief cannot be built (no model with an
            auxiliary probe): pass ``belief="env"`` or a model trained with auxiliary targets.
        ModelEnvActionsError: The model's training env and ``env`` have different actions.
    """
    agent_settings: dict[str, Any] = {}
    if settings:
        check_settings(settings)
        agent_settings, settings = split_settings(settings)
    if belief is None:
        belief = check_belief(agent_settings.get("belief"), "Planner settings")
    if config is None:
        budget = simulations or int((settings or {}).get("num_simulations", DEFAULT_SIMULATIONS))
        if ppo_model is None:
            config = MCTSConfig(num_simulations=budget, reuse_tree=True, chance_widening_c=1.0)
        else:
            config = MCTSConfig(
                num_simulations=budget,
                selection="puct",
                discount=float(getattr(ppo_model, "gamma", 0.99)),
                batch_size=min(8, budget),
                reuse_tree=True,
                chance_widening_c=1.0,
            )
    if settings:
        config = dataclasses.replace(config, **settings)
    if simulations is not None and config.num_simulations != simulations:
        # An explicit budget (the command line's --simulations) beats every file.
        config = dataclasses.replace(config, num_simulations=simulations)
    return MCTSAgent(
        ppo_model,
        None,
        config,
        env=env,
        seed=seed,
        oracle=oracle,
        belief=belief,
        model_env=model_env,
    )
