"""An exploring service and simulated customers over HTTP: what is logged is what was sampled."""

from __future__ import annotations

import re

import numpy as np
import pytest
from tiny_models import TINY
from tiny_models import sharpen as _sharpen

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

import rlagent  # noqa: E402,F401  (registers the bundled envs)
from rlagent.agents import load_model, make_ppo, save_model  # noqa: E402
from rlagent.datasets import read_episodes  # noqa: E402
from rlagent.datasets.behaviour import (
    ModelBehaviour,  # noqa: E402
    epsilon_soft,  # noqa: E402
)
from rlagent.env_making import make_env  # noqa: E402
from rlagent.serving import (  # noqa: E402
    BackgroundServer,
    CustomersError,
    Exploration,
    ServedAgent,
    ServingConfigError,
    build_app,
    export_minari,
    play_customers,
)

CS = "rlagent/CustomerService-v0"
REC = "rlagent/Recommendation-v0"


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("explore")
    return {
        "cs": save_model(_sharpen(make_ppo(CS, **TINY)), root / "cs"),
        "rec": save_model(make_ppo(REC, **TINY), root / "rec"),
    }


def _chats(agent: ServedAgent, n: int) -> tuple[list, list]:
    env = make_env(CS, {})
    observations, masks = [], []
    for seed in range(n):
        env.reset(seed=seed)
        live = agent.new_session()
        live.customer(env.unwrapped.get_state().transcript[-1][len("Customer: ") :])
        observations.append(live.observation())
        masks.append(live.action_masks())
    return observations, masks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "Exploration needs exactly one of epsilon="),
        ({"epsilon": 0.1, "temperature": 1.0}, "Exploration needs exactly one of epsilon="),
        ({"epsilon": 0.0}, "epsilon=0.0 must be a number in (0, 1]"),
        ({"epsilon": 1.5}, "epsilon=1.5 must be a number in (0, 1]"),
        ({"temperature": -1.0}, "temperature=-1.0 must be a number > 0"),
        ({"temperature": float("nan")}, "temperature=nan must be a number > 0"),
        ({"epsilon": 0.1, "seed": "x"}, "seed='x' must be an int."),
    ],
)
def test_bad_exploration_settings_are_refused(kwargs, message):
    with pytest.raises(ServingConfigError, match=re.escape(message)):
        Exploration(**kwargs)


def test_epsilon_samples_epsilon_soft_around_the_mode_and_reports_it(model_dirs):
    plain = ServedAgent.load(model_dirs["cs"])
    agent = ServedAgent.load(model_dirs["cs"], exploration=Exploration(epsilon=0.5, seed=3))
    observations, masks = _chats(agent, 40)
    greedy = plain.decide(observations, masks)
    decisions = agent.decide(observations, masks)
    n = len(agent.action_names)
    modes = np.zeros((len(greedy), n))
    modes[np.arange(len(greedy)), [d.action for d in greedy]] = 1.0
    expected = epsilon_soft(modes, 0.5, [m.astype(bool) for m in masks])
    got = np.array([[d.probabilities[name] for name in agent.action_names] for d in decisions])
    np.testing.assert_allclose(got, expected, atol=1e-12)
    for d, row in zip(decisions, got, strict=True):
        assert d.probability == pytest.approx(row[d.action])
    # Some decisions left the mode, and every one of them is an allowed action.
    assert any(d.action != g.action for d, g in zip(decisions, greedy, strict=True))
    assert agent.settings["exploration"] == {"epsilon": 0.5, "temperature": None, "seed": 3}


def test_temperature_reports_what_collect_records(model_dirs):
    agent = ServedAgent.load(model_dirs["cs"], exploration=Exploration(temperature=400.0))
    observations, masks = _chats(agent, 12)
    decisions = agent.decide(observations, masks)
    behaviour = ModelBehaviour(
        load_model(model_dirs["cs"]), make_env(CS, {}), temperature=400.0, epsilon=None
    )
    expected = behaviour.distributions(range(12), observations, masks)
    got = np.array([[d.probabilities[name] for name in agent.action_names] for d in decisions])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)
    assert 0.0 < min(d.probability for d in decisions) <= max(d.probability for d in decisions) < 1


def test_exploration_is_refused_for_slates_and_with_a_planner(model_dirs):
    with pytest.raises(ServingConfigError, match=re.escape("exploration serves dialogues")):
        ServedAgent.load(model_dirs["rec"], exploration=Exploration(temperature=1.0))
    with pytest.raises(ServingConfigError, match=re.escape("Serve with one of them, not both.")):
        ServedAgent.load(model_dirs["cs"], planner="mcts", exploration=Exploration(epsilon=0.1))


def test_simulated_customers_fill_a_log_that_exports_their_rewards_and_propensities(
    model_dirs, tmp_path
):
    log = tmp_path / "log.db"
    app = build_app(model_dirs["cs"], log=log, exploration=Exploration(epsilon=0.4, seed=1))
    with BackgroundServer(app) as url:
        run = play_customers(url, episodes=12, seed=5, concurrency=3)
    assert run.episodes == 12 and run.lengths and min(run.lengths) >= 1
    # The same chats in the env alone give the same returns for the same actions.
    env = make_env(CS, {})
    names = list(env.unwrapped.action_names)
    for i, actions in enumerate(run.actions):
        env.reset(seed=5 + i)
        total = sum(env.step(names.index(a))[1] for a in actions)
        assert total == pytest.approx(run.returns[i])
    out = export_minari(log, tmp_path / "data")
    episodes = {str(e.infos["session_id"][0]): e for e in read_episodes(out)}
    assert set(episodes) == set(run.session_ids)
    for sid, ret, actions in zip(run.session_ids, run.returns, run.actions, strict=True):
        episode = episodes[sid]
        assert float(np.sum(episode.rewards)) == pytest.approx(ret)
        assert [names[int(a)] for a in episode.actions] == actions
        probs = episode.action_probabilities
        taken = probs[np.arange(len(actions)), np.asarray(episode.actions, dtype=int)]
        np.testing.assert_allclose(taken, episode.propensities)
        # Epsilon spread over the allowed actions: all of them at the opening, and never less
        # than 0.4 / 14 on one allowed later (a rejected group gets 0).
        assert np.all(probs[0] >= 0.4 / len(names) - 1e-12)
        assert np.all((probs == 0) | (probs >= 0.4 / len(names) - 1e-12))
    assert run.success_rate == pytest.approx(np.mean([o == "success" for o in run.outcomes]))


def test_customers_need_a_ready_dialogue_server(model_dirs):
    with pytest.raises(CustomersError, match=re.escape("no server answers at http://127.0.0.1:9")):
        play_customers("http://127.0.0.1:9", episodes=1)
    with pytest.raises(CustomersError, match=re.escape("episodes=0 must be an int >= 1.")):
        play_customers("http://127.0.0.1:9", episodes=0)
    with BackgroundServer(build_app(model_dirs["rec"], log=None)) as url:
        with pytest.raises(CustomersError, match=re.escape("serves 'slate', not chats")):
            play_customers(url, episodes=1)


def test_serve_refuses_a_bad_epsilon_with_a_clear_message(model_dirs, capsys):
    from rlagent.cli import main

    assert main(["serve", str(model_dirs["cs"]), "--epsilon", "1.5", "--no-log"]) == 2
    err = capsys.readouterr().err
    assert "rlagent serve: error: epsilon=1.5 must be a number in (0, 1]" in err
    with pytest.raises(SystemExit):
        main(["serve", str(model_dirs["cs"]), "--epsilon", "0.1", "--temperature", "1"])
    assert "not allowed with argument" in capsys.readouterr().err
