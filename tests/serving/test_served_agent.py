"""The served agent: safe loading, batched decisions on live observations, train/serve parity."""

from __future__ import annotations

import json
import re
import shutil
import zipfile

import gymnasium as gym
import numpy as np
import pytest
from crafted_pickles import crafted_sb3_data
from tiny_models import TINY
from tiny_models import sharpen as _sharpen

import rlagent  # noqa: F401  (registers the bundled envs)
from envs.customer_service import CustomerServiceEnv
from rlagent.agents import ModelEnvMismatchError, UntrustedModelError, make_ppo, save_model
from rlagent.env_making import make_env
from rlagent.evaluation import evaluate
from rlagent.serving import (
    Decision,
    LiveInputError,
    PickledModelError,
    ServedAgent,
    ServingConfigError,
    ServingError,
    SessionInputError,
    model_hash,
)

CS = "rlagent/CustomerService-v0"
REC = "rlagent/Recommendation-v0"
PREFIX = "Customer: "


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    paths = {
        # The bundled config: an auxiliary probe (bottleneck actor), no action masks.
        "cs": save_model(_sharpen(make_ppo(CS, **TINY)), root / "cs"),
        # Action masks, and no probe.
        "masked": save_model(
            _sharpen(
                make_ppo(
                    CS,
                    action_masks=True,
                    auxiliary={"coef": 0.0, "bottleneck": False, "belief_noise": 0.0},
                    **TINY,
                )
            ),
            root / "masked",
        ),
        # Slates of 2 from the candidate-scoring head, a privileged critic.
        "rec": save_model(_sharpen(make_ppo(REC, **TINY)), root / "rec"),
    }
    return paths


class Recorder(gym.Wrapper):
    """Records the actions ``evaluate`` takes, one list per episode."""

    def __init__(self, env):
        super().__init__(env)
        self.episodes: list[list] = []

    def reset(self, **kwargs):
        self.episodes.append([])
        return self.env.reset(**kwargs)

    def step(self, action):
        self.episodes[-1].append(np.asarray(action).tolist())
        return self.env.step(action)


def evaluated_actions(path, env_id, env_kwargs, *, episodes, seed, **kwargs):
    env = Recorder(make_env(env_id, env_kwargs))
    evaluate(path, env, episodes=episodes, seed=seed, device="cpu", **kwargs)
    return env.episodes


def served_chat(agent: ServedAgent, env: gym.Env, seed: int) -> list[int]:
    obs, _ = env.reset(seed=seed)
    chat = agent.new_session()
    actions = []
    while True:
        chat.customer(obs["dialogue"][-1][len(PREFIX) :])
        sessions = [chat] if agent.settings["planner"] else None
        decision = agent.decide([chat.observation()], [chat.action_masks()], sessions=sessions)[0]
        actions.append(decision.action)
        assert chat.act(decision.action) == env.unwrapped.agent_phrases[decision.action]
        obs, _, terminated, truncated, _ = env.step(decision.action)
        if terminated or truncated:
            return actions


def served_slates(agent: ServedAgent, env: gym.Env, seed: int) -> list[list[int]]:
    obs, _ = env.reset(seed=seed)
    session = agent.new_session()
    actions = []
    while True:
        history = list(reversed([text for text in obs["history"] if text]))
        live = session.observation(
            list(obs["candidates"]), history, obs["candidate_popularity"].tolist()
        )
        decision = agent.decide([live])[0]
        actions.append(decision.action)
        obs, reward, terminated, truncated, info = env.step(np.array(decision.action))
        shown = list(dict.fromkeys(decision.action))
        clicked = shown[info["clicked"]] if info["clicked"] >= 0 else None
        session.record(decision.action, clicked, reward if clicked is not None else None)
        if terminated or truncated:
            return actions


# ---------------------------------------------------------------- train/serve parity
@pytest.mark.parametrize(
    ("name", "env_kwargs"),
    [("cs", None), ("cs", {"split": "val", "noise": 0.2}), ("masked", {"vague_prob": 0.5})],
)
def test_served_chats_take_the_actions_evaluate_takes(models, name, env_kwargs):
    agent = ServedAgent.load(models[name], env_id=CS, env_kwargs=env_kwargs)
    kwargs = agent.settings["env_kwargs"]
    expected = evaluated_actions(models[name], CS, kwargs, episodes=12, seed=100)
    env = make_env(CS, kwargs)
    served = [served_chat(agent, env, 100 + i) for i in range(12)]
    assert served == expected
    assert len({a for episode in served for a in episode}) >= 2  # the policy does vary


def test_served_slates_take_the_actions_evaluate_takes(models):
    kwargs = {"budget": 30.0, "n_items": 200}
    agent = ServedAgent.load(models["rec"], env_kwargs=kwargs)
    assert agent.settings["env_kwargs"] == kwargs and agent.kind == "slate"
    expected = evaluated_actions(models["rec"], REC, kwargs, episodes=3, seed=7)
    env = make_env(REC, kwargs)
    served = [served_slates(agent, env, 7 + i) for i in range(3)]
    assert served == expected
    assert len({tuple(a) for episode in served for a in episode}) >= 3


def test_served_planner_takes_the_actions_evaluate_plans(models):
    # Openings are specific (a live chat cannot tell a vague one) and the chats are on the
    # test split while the model's planner simulates its training split, as in evaluate.
    kwargs = {"split": "test", "vague_prob": 0.0}
    agent = ServedAgent.load(models["cs"], env_kwargs=kwargs, planner="mcts", simulations=6)
    assert agent.settings == {
        "env_id": CS,
        "env_kwargs": kwargs,
        "planner": "mcts",
        "simulations": 6,
        "seed": 0,
        "device": "cpu",
        "encoder_dtype": None,
        "exploration": None,
    }
    env = make_env(CS, kwargs)
    for seed in (3, 6):  # episodes of three planned turns
        expected = evaluated_actions(
            models["cs"], CS, kwargs, episodes=1, seed=seed, planner="mcts", simulations=6
        )
        planned = ServedAgent.load(
            models["cs"], env_kwargs=kwargs, planner="mcts", simulations=6, seed=seed
        )
        assert [served_chat(planned, env, seed)] == expected


def test_a_planned_decision_reports_visit_shares(models):
    agent = ServedAgent.load(models["cs"], planner="mcts", simulations=8)
    chat = agent.new_session()
    chat.customer("my card has not arrived yet")
    (decision,) = agent.decide([chat.observation()], sessions=[chat])
    assert sum(decision.probabilities.values()) == pytest.approx(1.0)
    assert decision.probability == decision.probabilities[decision.action_name]
    assert decision.probability == max(decision.probabilities.values())
    assert all(8 * p == pytest.approx(round(8 * p)) for p in decision.probabilities.values())


# ---------------------------------------------------------------- batches
def _chat_observations(agent: ServedAgent, count: int):
    env = make_env(CS, agent.settings["env_kwargs"])
    observations, masks = [], []
    seed = 0
    while len(observations) < count:
        obs, _ = env.reset(seed=seed)
        chat = agent.new_session()
        for action in (11, 0, 12):  # ask_clarify, a resolution, an apology
            chat.customer(obs["dialogue"][-1][len(PREFIX) :])
            observations.append(chat.observation())
            masks.append(chat.action_masks())
            chat.act(action)
            obs, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                break
        seed += 1
    return observations[:count], masks[:count]


@pytest.mark.parametrize("name", ["cs", "masked"])
def test_a_batch_decides_as_one_call_per_observation(models, name):
    agent = ServedAgent.load(models[name])
    observations, masks = _chat_observations(agent, 10)
    batch = agent.decide(observations, masks)
    singles = [agent.decide([o], [m])[0] for o, m in zip(observations, masks, strict=True)]
    assert [d.action for d in batch] == [d.action for d in singles]
    for b, s in zip(batch, singles, strict=True):
        assert b.action_name == agent.action_names[b.action] and list(b.probabilities) == list(
            agent.action_names
        )
        np.testing.assert_allclose(
            list(b.probabilities.values()), list(s.probabilities.values()), rtol=1e-4, atol=1e-6
        )
        assert b.value == pytest.approx(s.value, rel=1e-4, abs=1e-6)
        assert b.probability == pytest.approx(b.probabilities[b.action_name], rel=1e-5)
        assert sum(b.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert agent.decide([]) == []


def test_masks_change_decisions_only_for_a_model_trained_with_them(models):
    masked, plain = ServedAgent.load(models["masked"]), ServedAgent.load(models["cs"])
    for agent in (masked, plain):
        chat = agent.new_session()
        chat.customer("my card has not arrived yet")
        first = agent.decide([chat.observation()])[0]
        mask = np.ones(len(agent.action_names), dtype=bool)
        mask[first.action] = False
        again = agent.decide([chat.observation()], [mask])[0]
        if agent is masked:
            assert again.action != first.action and again.probabilities[first.action_name] == 0
        else:
            assert again == first


def test_slate_decisions_name_candidate_positions(models):
    agent = ServedAgent.load(models["rec"])
    assert agent.action_names == tuple(str(i) for i in range(10))
    session = agent.new_session()
    texts = [f"Cooking show {i}" for i in range(5)] + [f"SHOCKING news {i}" for i in range(5)]
    observations = [session.observation(texts), session.observation(texts[::-1])]
    batch = agent.decide(observations)
    assert [d.action for d in batch] == [agent.decide([o])[0].action for o in observations]
    for decision in batch:
        assert isinstance(decision, Decision) and decision.action_name == "slate"
        assert len(decision.action) == 2 and all(0 <= p < 10 for p in decision.action)
        assert sum(decision.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert 0 < decision.probability <= 1
        assert decision.value is None  # a privileged critic reads what a live session lacks


# ---------------------------------------------------------------- loading and identity
def test_identity_settings_and_sessions(models, tmp_path):
    agent = ServedAgent.load(models["cs"])
    assert agent.kind == "dialogue" and agent.settings == {
        "env_id": CS,
        "env_kwargs": {"split": "train"},
        "planner": None,
        "simulations": None,
        "seed": None,
        "device": "cpu",
        "encoder_dtype": None,
        "exploration": None,
    }
    assert agent.action_names == CustomerServiceEnv().action_names
    assert agent.new_session() is not agent.new_session()
    copy = shutil.copytree(models["cs"], tmp_path / "copy")
    assert model_hash(copy) == agent.model_hash == ServedAgent.load(copy).model_hash
    assert re.fullmatch("[0-9a-f]{64}", agent.model_hash)
    (copy / "README.md").write_text("notes")
    assert model_hash(copy) != agent.model_hash


def test_a_pickled_model_is_refused_and_nothing_in_it_runs(models, tmp_path):
    from rlagent.agents import load_model

    harmless = tmp_path / "model.zip"
    load_model(models["cs"], device="cpu").save(harmless)
    marker = tmp_path / "payload-ran"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(harmless) as src, zipfile.ZipFile(evil, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "data":
                data = crafted_sb3_data(data, marker).encode()
            dst.writestr(item, data)
    message = (
        f"{evil} is a pickled model (a Stable-Baselines3 .zip): loading it runs code stored in "
        "its pickle, which can do anything a program you run can do, so a service never loads "
        f"one. If you trust where the file came from, convert it once with `rlagent export "
        f"{evil} OUT` (rlagent.agents.export_model) and serve OUT, which holds only weights "
        "and JSON."
    )
    with pytest.raises(PickledModelError, match=re.escape(message)) as caught:
        ServedAgent.load(evil)
    assert isinstance(caught.value, UntrustedModelError)
    assert isinstance(caught.value, ServingConfigError) and isinstance(caught.value, ServingError)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"planner": "beam"}, "planner='beam' is unknown; expected None (the policy alone)"),
        ({"planner": "mcts", "simulations": 0}, "simulations=0; expected an int >= 1"),
        ({"simulations": True}, "simulations=True; expected an int >= 1"),
    ],
)
def test_bad_settings_are_refused(models, kwargs, message):
    with pytest.raises(ServingConfigError, match=re.escape(message)):
        ServedAgent.load(models["cs"], **kwargs)


def test_planners_are_refused_where_they_cannot_plan_honestly(models):
    message = (
        "planner='mcts' plans live chats only (rlagent/CustomerService-v0 and envs like it); "
        "rlagent/Recommendation-v0 serves slates, whose candidates are free texts"
    )
    with pytest.raises(ServingConfigError, match=re.escape(message)):
        ServedAgent.load(models["rec"], planner="mcts")
    message = (
        "planner='mcts' plans a live chat with the learned belief, which reads the hidden "
        "state from the model's auxiliary probe and simulates on the env the model was "
        "trained on; belief='learned' reads the hidden fields from the policy's auxiliary "
        "probe, and this model has none"
    )
    with pytest.raises(ServingConfigError, match=re.escape(message)):
        ServedAgent.load(models["masked"], planner="mcts")


def test_env_problems_are_named(models, tmp_path, monkeypatch):
    copy = shutil.copytree(models["cs"], tmp_path / "no-id")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["rlagent_spec"]["env_id"] = None
    (copy / "manifest.json").write_text(json.dumps(manifest))
    message = "records no env id (it was built on an env instance); pass env_id= (--env ID)"
    with pytest.raises(ServingConfigError, match=re.escape(message)):
        ServedAgent.load(copy)
    assert ServedAgent.load(copy, env_id=CS).settings["env_kwargs"] == {}
    with pytest.raises(ModelEnvMismatchError):
        ServedAgent.load(models["rec"], env_id=CS)
    monkeypatch.setattr(CustomerServiceEnv, "live_session", None)
    message = (
        "rlagent/CustomerService-v0 has no live_session(), so live input cannot be turned into "
        "its observations; serve a model of an env that has one"
    )
    with pytest.raises(ServingConfigError, match=re.escape(message)):
        ServedAgent.load(models["cs"])


# ---------------------------------------------------------------- bad input
def test_bad_decide_input_is_refused(models):
    agent = ServedAgent.load(models["cs"])
    chat = agent.new_session()
    chat.customer("hello")
    obs, mask = chat.observation(), chat.action_masks()
    cases = [
        (([obs], [mask, mask]), "Got 2 masks for 1 observations; pass one mask (or None)"),
        (([obs], [mask[:3]]), "Mask 0 has 3 entries; expected one per action (14), as "),
        (([obs, {"dialogue": ()}],), "Observation 1 does not fit rlagent/CustomerService-v0's "),
        (([{**obs, "request": "tab\there"}],), "Observation 0 does not fit"),
        (("not a list of dicts",), "Observation 0 does not fit"),
    ]
    for args, message in cases:
        with pytest.raises(SessionInputError, match=re.escape(message)):
            agent.decide(*args)
    assert issubclass(SessionInputError, LiveInputError) and issubclass(
        SessionInputError, ValueError
    )


def test_a_planner_needs_the_sessions_awaiting_it(models):
    agent = ServedAgent.load(models["cs"], planner="mcts", simulations=2)
    chat = agent.new_session()
    chat.customer("hello")
    message = "planner='mcts' searches from each chat's whole history: pass sessions= (the live "
    with pytest.raises(SessionInputError, match=re.escape(message)):
        agent.decide([chat.observation()])
    assert agent.decide([chat.observation()], sessions=[chat])[0].action in range(14)
    chat.act(agent.action_names.index("ask_clarify"))
    message = "Session 0 does not await the agent (whose_turn is 'customer'); decide after the"
    with pytest.raises(SessionInputError, match=re.escape(message)):
        agent.decide([chat.observation()], sessions=[chat])


# ---------------------------------------------------------------- encoder dtype
def test_an_int8_encoder_the_gate_refuses_is_not_served(models, monkeypatch):
    pytest.importorskip("onnxruntime")
    import rlagent.agents as agents
    from rlagent.agents import EncoderDtypeError

    gate = agents.resolve_encoder_dtype
    calls = []

    def strict(model, env, dtype, **kwargs):
        calls.append(dtype)
        return gate(model, env, dtype, observations=20, min_action_agreement=1.01, **kwargs)

    monkeypatch.setattr(agents, "resolve_encoder_dtype", strict)
    with pytest.raises(EncoderDtypeError, match="int8"):
        ServedAgent.load(models["cs"], encoder_dtype="int8")
    assert calls == ["int8"]
    agent = ServedAgent.load(models["cs"], encoder_dtype="fp32")
    assert agent.settings["encoder_dtype"] == "fp32" and calls == ["int8", "fp32"]
