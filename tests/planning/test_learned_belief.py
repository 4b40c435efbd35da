"""The learned belief: particles from what the model reads, on the env it was trained on."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest

import rlagent  # noqa: F401  (registers the bundled envs)
from envs.customer_service import CustomerServiceEnv
from envs.customer_service.errors import CustomerServiceConfigError
from rlagent.planning import (
    BeliefUnavailableError,
    LearnedBelief,
    ModelEnvActionsError,
    ParticleBelief,
    PlanningConfigError,
    hide,
    make_planning_agent,
    read_planner_settings,
    resolve_belief,
)

CS = "rlagent/CustomerService-v0"
REC = "rlagent/Recommendation-v0"
TINY = dict(encoder="tiny-random", encoder_layers=[-1], n_envs=1, seed=0, device="cpu")
TINY.update(max_length=16, n_steps=8, batch_size=8)

# Two categories of each group; what the text says is the category, the mapping its group.
TEXTS = {
    "card_arrival": ["my card has not arrived yet", "still waiting for my new card"],
    "card_linking": ["how do i link my card to the app", "add my card to my account"],
    "transfer_fee": ["why was i charged for a transfer", "what is the fee on transfers"],
    "transfer_timing": ["my transfer has not gone through", "how long does a transfer take"],
}
GROUPS = {  # key order fixes the group order: cards, then transfers
    "card_arrival": "cards",
    "card_linking": "cards",
    "transfer_fee": "transfers",
    "transfer_timing": "transfers",
}
MOVED = {  # every category in the other group, the group order kept
    "transfer_fee": "cards",
    "transfer_timing": "cards",
    "card_arrival": "transfers",
    "card_linking": "transfers",
}


def _posterior(n_groups: int, *, group: int, mood: int = 0, specified: float = 1.0):
    out = np.zeros(5 + n_groups)
    out[mood] = 1.0
    out[3] = specified
    out[4] = 0.5
    out[5 + group] = 1.0
    return out


def _group_of(env: CustomerServiceEnv, intent: str) -> int:
    return env.bank.intent_group[env.bank.intent_index[intent]]


def _no_label_lookup(*args, **kwargs):
    raise AssertionError("log_likelihood was called: the learned belief read the wording ids")


def test_particles_follow_the_posterior_they_are_given(monkeypatch):
    monkeypatch.setattr(CustomerServiceEnv, "log_likelihood", _no_label_lookup)
    env = CustomerServiceEnv()
    env.reset(seed=0)
    state = env.get_state()
    n = len(env.groups)
    for group, mood, specified in [(3, 2, 1.0), (7, 0, 0.0)]:
        posterior = _posterior(n, group=group, mood=mood, specified=specified)
        belief = LearnedBelief(env, lambda obs, p=posterior: p, num_particles=32)
        particles = belief.update(hide(state), np.random.default_rng(0))
        assert len(particles) == 32 and belief.effective_sample_size == 32
        assert {_group_of(env, p.intent) for p in particles} == {group}
        assert {(p.mood, p.vague) for p in particles} == {(mood, specified == 0.0)}
        assert all(hide(p) == hide(state) and p.patience > state.turn for p in particles)
        np.testing.assert_array_equal(belief.posterior, posterior)
    # A group the customer rejected is never drawn, whatever the posterior says.
    intent = env.intents[env.bank.group_intents[0][0]]
    env.reset(seed=0, options={"intent": intent, "mood": "calm", "patience": 5})
    env.step(3)
    state = env.get_state()
    assert not state.outcome
    posterior = _posterior(n, group=3)
    posterior[5 + 4] = 1.0
    belief = LearnedBelief(env, lambda obs: posterior, num_particles=32)
    particles = belief.update(hide(state), np.random.default_rng(1))
    assert {_group_of(env, p.intent) for p in particles} == {4}


def test_the_posterior_must_match_the_privileged_features():
    env = CustomerServiceEnv()
    env.reset(seed=0)
    n = len(env.groups)
    message = f"got 3 values in [0, 1]; expected {5 + n} probabilities in [0, 1]"
    with pytest.raises(CustomerServiceConfigError, match=re.escape(message)):
        env.sample_hidden(env.get_state(), np.random.default_rng(0), posterior=[0.0, 1.0, 0.5])
    with pytest.raises(CustomerServiceConfigError, match=re.escape("got 16 values in [-1, -1]")):
        env.sample_hidden(env.get_state(), np.random.default_rng(0), posterior=-np.ones(5 + n))


def test_the_default_belief_is_learned_where_the_env_supports_it():
    assert resolve_belief(None, gym.make(CS)) == "learned"
    assert resolve_belief(None, gym.make(REC)) == "env"
    assert resolve_belief("env", gym.make(CS)) == "env"
    assert resolve_belief("learned", gym.make(CS), oracle=True) == "oracle"
    with pytest.raises(PlanningConfigError, match=re.escape("belief='labels'; expected one of")):
        resolve_belief("labels", gym.make(CS))


def test_a_learned_belief_needs_a_probe_and_a_posterior_seam():
    with pytest.raises(BeliefUnavailableError, match=re.escape("this planner has no model")):
        make_planning_agent(None, gym.make(CS))
    message = "RecommendationEnv.sample_hidden takes no posterior=..."
    with pytest.raises(BeliefUnavailableError, match=re.escape(message)):
        make_planning_agent(None, gym.make(REC), belief="learned")
    from rlagent.agents import AgentConfig, make_ppo

    plain = make_ppo(CS, config=AgentConfig(), **TINY)  # no auxiliary head
    message = "this model has none (not of the env's privileged features); train with auxiliary"
    with pytest.raises(BeliefUnavailableError, match=re.escape(message)):
        make_planning_agent(plain, gym.make(CS))
    assert make_planning_agent(plain, gym.make(CS), belief="env").belief_name == "env"


def test_planner_settings_may_name_the_belief(tmp_path):
    path = tmp_path / "planner.yaml"
    path.write_text("max_depth: 1\nbelief: env\n")
    settings = read_planner_settings(path)
    assert settings == {"max_depth": 1, "belief": "env"}
    agent = make_planning_agent(None, gym.make(CS), settings=settings)
    assert (agent.belief_name, agent.config.max_depth) == ("env", 1)
    path.write_text("belief: labels\n")
    with pytest.raises(PlanningConfigError, match=re.escape("belief='labels'; expected one of")):
        read_planner_settings(path)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A training CSV, a test CSV and two group mappings: the trained one and a moved one."""
    folder = tmp_path_factory.mktemp("data")
    rows = [(text, cat) for cat, texts in TEXTS.items() for text in texts]
    for name, part in (("train.csv", rows), ("test.csv", rows[::2])):
        lines = ["text,category", *(f"{text},{cat}" for text, cat in part)]
        (folder / name).write_text("\n".join(lines) + "\n")
    (folder / "groups.json").write_text(json.dumps(GROUPS))
    (folder / "moved.json").write_text(json.dumps(MOVED))
    return folder


@pytest.fixture(scope="module")
def dataset_model(dataset):
    """A tiny model with an auxiliary probe, trained (built) on the training CSV."""
    from rlagent.agents import make_ppo

    kwargs = {"dataset": str(dataset / "train.csv"), "groups": str(dataset / "groups.json")}
    return make_ppo(CS, env_kwargs=kwargs, **TINY)


def _reads_the_text(env_model: CustomerServiceEnv):
    """A perfect reader of the request, trained on the training mapping: a stub probe."""
    n = len(env_model.groups)

    def predict(observation):
        request = observation["request"]
        category = next(cat for cat, texts in TEXTS.items() if any(t in request for t in texts))
        return _posterior(n, group=env_model.groups.index(GROUPS[category]))

    return predict


def test_the_learned_belief_reads_the_text_and_the_env_belief_the_label(
    dataset, dataset_model, monkeypatch
):
    env = gym.make(
        CS,
        dataset=str(dataset / "test.csv"),
        groups=str(dataset / "moved.json"),
        split="test",
        vague_prob=0.0,
    )
    learned = make_planning_agent(dataset_model, env, simulations=4, seed=0)
    upper = make_planning_agent(dataset_model, env, simulations=4, seed=0, belief="env")
    assert (learned.belief_name, upper.belief_name) == ("learned", "env")
    assert isinstance(upper.belief, ParticleBelief)
    model_env = learned.env_model.env
    learned.belief.predict = _reads_the_text(model_env)
    base = env.unwrapped
    for seed in range(4):
        _, info = env.reset(seed=seed)
        label = base.groups.index(info["group"])
        said = model_env.groups.index(GROUPS[info["intent"]])  # what the text says
        assert label != said
        state = hide(base.get_state())
        rng = np.random.default_rng(seed)
        read = learned.belief.update(state, rng)
        assert {_group_of(model_env, p.intent) for p in read} == {said}
        looked_up = upper.belief.update(state, rng)
        assert {_group_of(base, p.intent) for p in looked_up} == {label}
    # Planning with the learned belief never calls the likelihood, on either env.
    monkeypatch.setattr(CustomerServiceEnv, "log_likelihood", _no_label_lookup)
    learned.reset(seed=0)
    env.reset(seed=0)
    assert env.action_space.contains(learned.act())


def test_the_model_env_is_built_from_the_training_settings(dataset, dataset_model):
    from rlagent.agents import make_ppo

    model = make_ppo(CS, env_kwargs={"split": "train"}, **TINY)
    agent = make_planning_agent(model, gym.make(CS, split="test"), simulations=2, seed=0)
    assert agent.env_model.env.split == "train"
    assert agent.env_model.env is not agent.env.unwrapped

    groups = str(dataset / "groups.json")
    env = gym.make(CS, dataset=str(dataset / "test.csv"), groups=groups, split="test")
    agent = make_planning_agent(dataset_model, env, simulations=2, seed=0)
    model_env = agent.env_model.env
    assert model_env.split == "train" and model_env.groups == ("cards", "transfers")
    texts = {model_env.bank.bodies[b].text for ids in model_env.bank.intent_bodies for b in ids}
    assert texts == {text for group in TEXTS.values() for text in group}  # train.csv's rows
    assert len(env.unwrapped.bank.bodies) < len(model_env.bank.bodies)


def test_model_and_evaluation_envs_must_share_their_actions(dataset, dataset_model):
    from rlagent.agents import make_ppo

    builtin = make_ppo(CS, **TINY)
    env = gym.make(CS, dataset=str(dataset / "test.csv"), groups=str(dataset / "groups.json"))
    message = "have different actions: action space Discrete(14) vs Discrete(5);"
    with pytest.raises(ModelEnvActionsError, match=re.escape(message)):
        make_planning_agent(builtin, env)
    swapped = dataset / "swapped.json"
    swapped.write_text(json.dumps({"transfer_fee": "transfers", **GROUPS}))
    env = gym.make(CS, dataset=str(dataset / "test.csv"), groups=str(swapped))
    message = "action 0 is 'resolve_cards' vs 'resolve_transfers'; evaluate on an env"
    with pytest.raises(ModelEnvActionsError, match=re.escape(message)):
        make_planning_agent(dataset_model, env)
    make_planning_agent(dataset_model, env, belief="env")  # the upper bound plans on env


def test_cli_plans_with_the_learned_belief_by_default(tmp_path, capsys):
    from rlagent.agents import make_ppo, save_model
    from rlagent.cli import main

    save_model(make_ppo(CS, **TINY), tmp_path / "m")
    argv = ["evaluate", str(tmp_path / "m"), "--episodes", "1", "--no-baselines", "--json"]
    argv += ["--env-kwargs", "split=test", "--planner", "mcts", "--simulations", "2"]
    for extra, belief in [([], "learned"), (["--belief", "env"], "env")]:
        assert main(argv + extra) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["episodes"], out["planner"], out["belief"]) == (1, "mcts", belief)
    assert main(argv[:6] + ["--belief", "env"]) == 2
    assert "--belief needs --planner mcts" in capsys.readouterr().err
