"""Env adapters, beliefs, the policy evaluator and the planning agent."""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass
from typing import ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

import rlagent  # noqa: F401  (registers the bundled envs)
from rlagent.planning import (
    MCTS,
    BeliefModel,
    EnvModel,
    MCTSAgent,
    MCTSConfig,
    ParticleBelief,
    PlanningStateError,
    PolicyEvaluator,
    action_table,
    hide,
    make_planning_agent,
    observable_key,
)

ENV_IDS = ["rlagent/CustomerService-v0", "rlagent/Recommendation-v0"]


@dataclass(frozen=True)
class GuessState:
    HIDDEN: ClassVar[tuple[str, ...]] = ("target",)

    target: int
    turn: int = 0
    hints: tuple[int, ...] = ()
    done: bool = False


class GuessEnv(gym.Env):
    """Guess a hidden number in 0..3 within 3 turns; action 4 asks for a noisy hint.

    Guessing right pays 1, wrong pays 0 and ends the episode. A hint is the target with
    probability 0.8, otherwise a uniform number.
    """

    observation_space = spaces.Box(-1.0, 3.0, (3,), np.float32)
    action_space = spaces.Discrete(5)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.state = GuessState(target=int(self.np_random.integers(4)))
        return self.observe(), {}

    def step(self, action):
        s = self.state
        if action < 4:
            reward = float(action == s.target)
            self.state = dataclasses.replace(s, turn=s.turn + 1, done=True)
            return self.observe(), reward, True, False, {}
        u = self.np_random.random()
        hint = s.target if u < 0.8 else int(self.np_random.random() * 4)
        self.state = dataclasses.replace(s, turn=s.turn + 1, hints=(*s.hints, hint))
        return self.observe(), 0.0, False, self.state.turn >= 3, {}

    def observe(self):
        hints = list(self.state.hints[-3:]) + [-1] * (3 - len(self.state.hints[-3:]))
        return np.array(hints, dtype=np.float32)

    def get_state(self):
        return self.state

    def set_state(self, state):
        self.state = state

    def sample_hidden(self, state, rng):
        return dataclasses.replace(state, target=int(rng.random() * 4))

    def log_likelihood(self, state):
        lp = 0.0
        for h in state.hints:
            lp += np.log(0.8 + 0.05 if h == state.target else 0.05)
        return lp


def test_action_table_orders_multidiscrete_row_major():
    table = action_table(spaces.MultiDiscrete([3, 2]))
    assert [t.tolist() for t in table] == [[0, 0], [0, 1], [1, 0], [1, 1], [2, 0], [2, 1]]
    assert action_table(spaces.Discrete(3, start=2)) == [2, 3, 4]
    with pytest.raises(PlanningStateError, match=re.escape("cannot enumerate a Box action")):
        action_table(spaces.Box(0, 1, (2,)))


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_env_model_steps_a_private_copy(env_id):
    env = gym.make(env_id)
    env.reset(seed=0)
    before = env.unwrapped.get_state()
    probe = env.unwrapped.np_random.random()
    env.reset(seed=0)
    model = EnvModel(env)
    state = env.unwrapped.get_state()
    a = model.step(state, 1, np.random.default_rng(7))
    b = model.step(state, 1, np.random.default_rng(7))
    assert a == b  # same state, same rng: same transition
    assert hash(a[0]) == hash(b[0])
    assert env.unwrapped.get_state() == before  # the caller's env is untouched
    assert env.unwrapped.np_random.random() == probe
    assert model.observe(state).keys() == env.unwrapped.observe().keys()


def test_env_model_needs_get_state():
    with pytest.raises(PlanningStateError, match=re.escape("has no get_state() method")):
        EnvModel(gym.make("CartPole-v1"))


def test_hide_and_observable_key():
    s = GuessState(target=2, turn=1, hints=(2,))
    assert hide(s) == GuessState(target=None, turn=1, hints=(2,))
    key = observable_key(s)
    assert key(s) == key(dataclasses.replace(s, target=0)) == (1, (2,), False)
    with pytest.raises(PlanningStateError, match=re.escape("not a dataclass with a HIDDEN")):
        hide((1, 2))


def test_particle_belief_concentrates_on_the_hinted_target():
    env = GuessEnv()
    belief = ParticleBelief(env, num_particles=200, num_proposals=400)
    observed = GuessState(target=None, turn=3, hints=(1, 1, 1))
    particles = belief.update(observed, np.random.default_rng(0))
    targets = np.array([p.target for p in particles])
    assert (targets == 1).mean() > 0.95  # posterior of target 1 is 0.9999 here
    assert all(hide(p) == observed for p in particles)
    assert belief.effective_sample_size < 400


def test_belief_search_keys_nodes_by_observations_only():
    env = GuessEnv()
    env.reset(seed=0)
    belief = BeliefModel(EnvModel(env), [GuessState(t) for t in range(4)])
    search = MCTS(belief, MCTSConfig(num_simulations=200))
    result = search.search(belief.root(), np.random.default_rng(0))
    # Without hints each guess is right 1/4 of the time; asking is worth at least 0.8.
    assert result.action == 4
    for bucket in search._root.children:
        for key in bucket or {}:
            assert key == belief.key(GuessState(None, *key))  # no hidden field in any key


def _run_episode(agent, env, seed, max_steps=6):
    obs, _ = env.reset(seed=seed)
    agent.reset(seed=seed)
    actions, total = [], 0.0
    for _ in range(max_steps):
        action = agent.act(obs)
        actions.append(np.asarray(action).tolist())
        obs, reward, terminated, truncated, _ = env.step(action)
        total += reward
        if terminated or truncated:
            break
    return actions, total


@pytest.mark.parametrize("env_id", ENV_IDS)
@pytest.mark.parametrize("oracle", [False, True])
def test_planning_agent_runs_and_is_deterministic(env_id, oracle):
    env = gym.make(env_id)
    # No model reads the text: the env's own likelihood (an upper bound) is the belief.
    agent = make_planning_agent(None, env, simulations=16, seed=3, oracle=oracle, belief="env")
    first = _run_episode(agent, env, seed=11)
    second = _run_episode(agent, env, seed=11)
    assert first == second
    space = env.action_space
    assert all(space.contains(np.asarray(a, dtype=space.dtype)) for a in first[0])
    assert agent.last_result is not None


def test_planner_never_reads_hidden_fields():
    """Two worlds that differ only in hidden fields get the same plan unless oracle=True."""
    decisions = {}
    for oracle in (False, True):
        for target in range(4):
            env = GuessEnv()
            env.reset(seed=0)
            env.state = GuessState(target=target, turn=1, hints=(3,))
            agent = MCTSAgent(
                None, None, MCTSConfig(num_simulations=100), env=env, seed=0, oracle=oracle
            )
            agent.act()
            decisions[oracle, target] = (agent.last_result.action, agent.last_result.q_values)
    assert len({decisions[False, t] for t in range(4)}) == 1
    assert {decisions[True, t][0] for t in range(4)} == {0, 1, 2, 3}  # the oracle just guesses


def test_predict_is_sb3_like():
    env = GuessEnv()
    env.reset(seed=0)
    agent = MCTSAgent(None, None, MCTSConfig(num_simulations=20), env=env, seed=0)
    action, state = agent.predict(env.observe())
    assert state is None and env.action_space.contains(action)


def test_agent_errors():
    with pytest.raises(PlanningStateError, match=re.escape("has no get_state(); pass the env")):
        MCTSAgent(None, None, env=gym.make("CartPole-v1"))


def _tiny_ppo(env):
    sb3 = pytest.importorskip("stable_baselines3")
    return sb3.PPO("MlpPolicy", env, n_steps=16, batch_size=16, seed=0, device="cpu")


def test_policy_evaluator_batches_leaves_in_one_forward_pass():
    from rlagent.planning import random_mdp

    mdp = random_mdp(np.random.default_rng(0))

    class OneHot(gym.Env):  # only gives the PPO its spaces
        observation_space = spaces.Box(0.0, 1.0, (26,), np.float32)
        action_space = spaces.Discrete(4)

    def observe(state):
        t, s = state
        x = np.zeros(26, np.float32)
        x[t] = x[6 + s] = 1.0
        return x

    evaluator = PolicyEvaluator(_tiny_ppo(OneHot()), observe)
    config = MCTSConfig(num_simulations=64, selection="puct", batch_size=8)
    result = MCTS(mdp, config, evaluator).search(mdp.initial, np.random.default_rng(0))
    assert sum(result.visit_counts) == 64
    assert evaluator.forward_passes <= 1 + 64 // 8
    assert evaluator.states_evaluated > 2 * evaluator.forward_passes  # several leaves per pass
    priors, value = evaluator.evaluate(mdp.initial, np.random.default_rng(0))
    assert len(priors) == 4 and abs(sum(priors) - 1) < 1e-5 and np.isfinite(value)


def test_policy_evaluator_multidiscrete_priors_are_products():
    class Slate(GuessEnv):
        action_space = spaces.MultiDiscrete([3, 2])

    env = Slate()
    env.reset(seed=0)
    ppo = _tiny_ppo(env)
    evaluator = PolicyEvaluator(ppo, EnvModel(env).observe)
    priors, _ = evaluator.evaluate(env.get_state(), np.random.default_rng(0))
    import torch

    obs, _ = ppo.policy.obs_to_tensor(env.observe())
    with torch.no_grad():
        parts = [d.probs[0].numpy() for d in ppo.policy.get_distribution(obs).distribution]
    np.testing.assert_allclose(priors, np.outer(parts[0], parts[1]).reshape(-1), rtol=1e-5)


def test_make_planning_agent_with_a_text_ppo_model():
    pytest.importorskip("transformers")
    from rlagent.agents import make_ppo

    env = gym.make("rlagent/CustomerService-v0")
    ppo = make_ppo(
        env, encoder="tiny-random", n_envs=1, seed=0, device="cpu", n_steps=16, batch_size=16
    )
    agent = make_planning_agent(ppo, env, simulations=16, seed=0, belief="env")
    assert agent.config.selection == "puct" and agent.config.discount == ppo.gamma
    assert agent.evaluator.value_scale == 1.0
    actions, _ = _run_episode(agent, env, seed=0, max_steps=2)
    assert all(env.action_space.contains(a) for a in actions)
    assert agent.evaluator.forward_passes < agent.evaluator.states_evaluated


def test_planning_values_undo_the_reward_scale_the_critic_was_trained_with():
    pytest.importorskip("transformers")
    from rlagent.agents import make_ppo

    env = gym.make("rlagent/CustomerService-v0")
    ppo = make_ppo(env, encoder="tiny-random", n_envs=1, seed=0, device="cpu", reward_scale=0.05)
    agent = make_planning_agent(ppo, env, simulations=4, seed=0, belief="env")
    assert agent.evaluator.value_scale == pytest.approx(20.0)


@pytest.mark.parametrize("oracle", [True, False])
def test_a_masked_model_reads_the_simulated_states_mask(oracle):
    pytest.importorskip("transformers")
    from rlagent.agents import make_ppo

    env = gym.make("rlagent/CustomerService-v0")
    ppo = make_ppo(
        env,
        encoder="tiny-random",
        n_envs=1,
        seed=0,
        device="cpu",
        action_masks=True,
        n_steps=16,
        batch_size=16,
    )
    base = env.unwrapped
    for seed in range(50):  # a customer who stays after a wrong resolution
        _, info = env.reset(seed=seed)
        start = base.get_state()
        wrong = (base.groups.index(info["group"]) + 1) % len(base.groups)
        _, _, terminated, truncated, _ = env.step(wrong)
        if not (terminated or truncated):
            break
    else:
        pytest.fail("every customer left after a wrong resolution")
    rejected = base.get_state()
    base.set_state(start)  # the real env is back at the start: nothing is masked there
    assert base.action_masks().all() and not EnvModel(env).action_mask(rejected)[wrong]
    agent = make_planning_agent(ppo, env, simulations=4, seed=0, oracle=oracle, belief="env")
    rng = np.random.default_rng(0)
    priors, _ = agent.evaluator.evaluate(rejected, rng)
    assert priors[wrong] < 1e-6 and sum(priors) == pytest.approx(1.0, abs=1e-5)
    priors, _ = agent.evaluator.evaluate(start, rng)
    assert min(priors) > 1e-3  # an untrained policy spreads its priors


def test_env_model_action_mask_needs_the_envs_method():
    env = GuessEnv()
    env.reset(seed=0)
    with pytest.raises(PlanningStateError, match=re.escape("has no action_masks() method")):
        EnvModel(env).action_mask(env.get_state())


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_particle_belief_on_bundled_envs_matches_the_observations(env_id):
    env = gym.make(env_id)
    env.reset(seed=4)
    env.action_space.seed(4)
    for _ in range(2):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    true_state = env.unwrapped.get_state()
    belief = ParticleBelief(env.unwrapped, num_particles=16, num_proposals=64)
    particles = belief.update(hide(true_state), np.random.default_rng(0))
    assert len(particles) == 16
    assert all(hide(p) == hide(true_state) for p in particles)
    assert all(np.isfinite(env.unwrapped.log_likelihood(p)) for p in particles)
    assert 1.0 <= belief.effective_sample_size <= 64


def test_planner_settings_change_the_defaults(tmp_path):
    pytest.importorskip("transformers")
    from rlagent.agents import make_ppo
    from rlagent.planning import PlanningConfigError, read_planner_settings

    env = gym.make("rlagent/CustomerService-v0")
    ppo = make_ppo(env, encoder="tiny-random", n_envs=1, seed=0, device="cpu")
    settings = {"max_depth": 1, "common_random_numbers": True, "belief": "env"}
    agent = make_planning_agent(ppo, env, simulations=8, seed=0, settings=settings)
    assert agent.belief_name == "env"
    settings.pop("belief")
    config = agent.config
    assert (config.max_depth, config.common_random_numbers) == (1, True)
    assert config.selection == "puct" and config.num_simulations == 8  # other defaults kept
    with pytest.raises(PlanningConfigError, match="settings: max_dept are not MCTSConfig"):
        make_planning_agent(ppo, env, simulations=8, settings={"max_dept": 1})

    good = tmp_path / "planner.yaml"
    good.write_text("max_depth: 1\ncommon_random_numbers: true\n")
    assert read_planner_settings(good) == settings
    for text, message in [
        ("- 1\n", "must hold a mapping"),
        ("depth: 1\n", "depth are not MCTSConfig fields"),
        ("max_depth: 0\n", "MCTSConfig.max_depth"),
        ("max_depth: [1\n", "not valid YAML"),
    ]:
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(PlanningConfigError, match=re.escape(message)):
            read_planner_settings(bad)
    with pytest.raises(PlanningConfigError, match="does not exist"):
        read_planner_settings(tmp_path / "missing.yaml")


def test_an_explicit_simulation_budget_beats_the_planner_settings():
    env = gym.make("rlagent/CustomerService-v0")
    settings = {"num_simulations": 4, "max_depth": 1, "belief": "env"}
    explicit = make_planning_agent(None, env, simulations=8, settings=settings)
    assert (explicit.config.num_simulations, explicit.config.max_depth) == (8, 1)
    assert make_planning_agent(None, env, settings=settings).config.num_simulations == 4
    assert make_planning_agent(None, env, belief="env").config.num_simulations == 100
    config = dataclasses.replace(MCTSConfig(), num_simulations=16)
    plan = functools.partial(make_planning_agent, None, env, config=config, belief="env")
    assert plan().config.num_simulations == 16
    assert plan(simulations=2).config.num_simulations == 2


def test_cli_evaluates_a_planner_with_a_planner_config(tmp_path, capsys):
    pytest.importorskip("transformers")
    import json

    from rlagent.agents import make_ppo, save_model
    from rlagent.cli import main

    ppo = make_ppo(
        "rlagent/CustomerService-v0",
        encoder="tiny-random",
        encoder_layers=[-1],
        n_envs=1,
        seed=0,
        device="cpu",
    )
    save_model(ppo, tmp_path / "m")
    settings = tmp_path / "planner.yaml"
    settings.write_text("max_depth: 1\ncommon_random_numbers: true\n")
    args = ["evaluate", str(tmp_path / "m"), "--episodes", "1", "--no-baselines", "--json"]
    plan = ["--planner", "mcts", "--simulations", "4", "--planner-config", str(settings)]
    plan += ["--belief", "env"]  # the model has no auxiliary probe to read beliefs with
    assert main(args + plan) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 1
    assert main(args + ["--planner-config", str(settings)]) == 2
    assert "--planner-config needs --planner mcts" in capsys.readouterr().err


def test_bundled_planner_settings_are_valid_and_per_env():
    from rlagent.planning import bundled_planner_settings

    rec = bundled_planner_settings("rlagent/Recommendation-v0")
    assert rec["max_depth"] == 1 and rec["common_random_numbers"] is True
    MCTSConfig(**rec)
    assert bundled_planner_settings("rlagent/CustomerService-v0") == {}
    assert bundled_planner_settings(None) == {}
