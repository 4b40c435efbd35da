"""rlagent ope and TargetPolicy on tiny real models and datasets exported from interaction logs."""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("minari", reason="datasets need minari (pip install rlagent[datasets])")
pytest.importorskip("pyarrow", reason="minari's arrow format needs pyarrow")

import rlagent  # noqa: E402,F401  (registers the envs)
from rlagent.agents import make_ppo, save_model  # noqa: E402
from rlagent.cli import main  # noqa: E402
from rlagent.datasets import (  # noqa: E402
    OPEError,
    TargetPolicy,
    action_indices,
    dataset_env,
    off_policy_evaluate,
    read_episodes,
)
from rlagent.serving import DecisionRecord, InteractionLog, ServedAgent, export_minari  # noqa: E402

CS = "rlagent/CustomerService-v0"
CS_KWARGS = {"history": 3, "max_turns": 5}
REC = "rlagent/Recommendation-v0"
REC_KWARGS = {"n_candidates": 4, "slate_size": 2, "history_length": 2, "n_items": 50}
TINY = dict(encoder="tiny-random", encoder_layers=[-1], n_envs=1, seed=0, device="cpu")
TINY.update(max_length=16, n_steps=8, batch_size=8)
KEYS = ["is", "wis", "pdis", "wpdis", "dm", "dr"]


def _behaviour(rng: np.random.Generator, space: gym.Space) -> np.ndarray:
    """A random full distribution; for slates, 0 on slates that repeat a position."""
    if isinstance(space, gym.spaces.Discrete):
        return rng.dirichlet(np.full(int(space.n), 2.0))
    n, k = int(space.nvec[0]), len(space.nvec)
    joint = rng.dirichlet(np.full(n**k, 2.0))
    joint[[i * n + i for i in range(n)]] = 0.0
    return joint / joint.sum()


def _log(path, env_id, env_kwargs, sessions: int, seed: int):
    """Play ``sessions`` episodes with a random logger, rewards as per-step feedback."""
    env = gym.make(env_id, **env_kwargs)
    space = env.action_space
    rng = np.random.default_rng(seed)
    with InteractionLog(path, model_hash="logger", env_id=env_id, env_kwargs=env_kwargs) as log:
        for s in range(sessions):
            sid = f"s{s}"
            log.start_session(sid, kind="test")
            obs, _ = env.reset(seed=seed + s)
            for t in range(6):
                probs = _behaviour(rng, space)
                index = int(rng.choice(probs.size, p=probs))
                if isinstance(space, gym.spaces.Discrete):
                    action, name = index, env.unwrapped.action_names[index]
                else:
                    action = [int(i) for i in np.unravel_index(index, tuple(space.nvec))]
                    name = ",".join(map(str, action))
                log.record_decisions(
                    [
                        DecisionRecord(
                            sid,
                            t,
                            1e9 + t,
                            obs,
                            "",
                            action,
                            name,
                            [float(p) for p in probs],
                            None,
                            "logger",
                        )
                    ]
                )
                obs, reward, terminated, truncated, _ = env.step(np.asarray(action))
                log.record_feedback(sid, step=t, reward=float(reward))
                if terminated or truncated:
                    break
            log.end_session(sid, "done")
    env.close()


@pytest.fixture(scope="module")
def cs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ope-cs")
    model = save_model(make_ppo(CS, env_kwargs=CS_KWARGS, **TINY), root / "model")
    _log(root / "log.db", CS, CS_KWARGS, sessions=12, seed=0)
    return model, export_minari(root / "log.db", root / "ds")


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    root = tmp_path_factory.mktemp("ope-rec")
    model = save_model(make_ppo(REC, env_kwargs=REC_KWARGS, **TINY), root / "model")
    _log(root / "log.db", REC, REC_KWARGS, sessions=6, seed=1)
    return model, export_minari(root / "log.db", root / "ds")


def test_cli_prints_every_estimate_as_json(cs, capsys):
    model, dataset = cs
    argv = ["ope", str(dataset), "--policy", str(model), "--json", "--bootstrap", "50"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out)[:6] == KEYS
    for name in KEYS:
        assert set(out[name]) >= {"value", "ci95"}
        assert isinstance(out[name]["value"], float) and len(out[name]["ci95"]) == 2
    assert out["episodes"] == 12 and out["ess"] > 0
    assert isinstance(out["warnings"], list) and out["value_model"] == "fqe"
    assert main(["ope", str(dataset), "--policy", str(model), "--value-model", "critic"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("estimator") and "12 episodes" in text


def test_cli_reports_a_wrong_env_as_an_error(cs, capsys):
    model, dataset = cs
    argv = ["ope", str(dataset), "--policy", str(model), "--env-kwargs", "history=4"]
    argv += ["--env", CS]
    assert main(argv) == 2
    assert "rlagent ope: error:" in capsys.readouterr().err


def test_target_probabilities_match_the_served_agent(cs):
    model, dataset = cs
    episodes = read_episodes(dataset)
    assert dataset_env(dataset) == (CS, CS_KWARGS)
    target = TargetPolicy.load(model, env_id=CS, env_kwargs=CS_KWARGS)
    observations = [o for e in episodes for o in e.observations[: len(e)]]
    outputs = target.outputs(observations, batch_size=5)
    served = ServedAgent.load(model, env_id=CS, env_kwargs=CS_KWARGS).decide(observations)
    expected = np.array([list(d.probabilities.values()) for d in served])
    np.testing.assert_allclose(outputs.probabilities, expected, atol=1e-6)
    np.testing.assert_allclose(outputs.values, [d.value for d in served], atol=1e-5)
    assert outputs.features.shape[0] == len(observations)
    with pytest.raises(OPEError, match=re.escape("Observation 0 does not fit")):
        target.outputs([{"dialogue": ("x",)}])


def test_slates_use_whole_slate_probabilities(rec):
    model, dataset = rec
    episodes = read_episodes(dataset)
    target = TargetPolicy.load(model, env_id=REC, env_kwargs=REC_KWARGS)
    assert target.n_actions == 16
    observations = [o for e in episodes for o in e.observations[: len(e)]]
    outputs = target.outputs(observations)
    np.testing.assert_allclose(outputs.probabilities.sum(axis=1), 1.0, atol=1e-5)
    # The first slot's marginal is what the served agent reports per candidate.
    served = ServedAgent.load(model, env_id=REC, env_kwargs=REC_KWARGS).decide(observations)
    first = outputs.probabilities.reshape(-1, 4, 4).sum(axis=2)
    np.testing.assert_allclose(first, [list(d.probabilities.values()) for d in served], atol=1e-5)
    assert action_indices(episodes[0].actions, target.action_space).shape == (len(episodes[0]),)
    report = off_policy_evaluate(episodes, target, n_bootstrap=20)
    assert list(report.to_json())[:6] == KEYS
    # The bundled slate policy may stop after one item (slate (i, i)); this logger never
    # shows a one-item slate, and the report says so.
    stopped = outputs.probabilities[:, [i * 4 + i for i in range(4)]].sum(axis=1)
    assert report.support.mean_unsupported_mass == pytest.approx(stopped.mean(), abs=1e-9)
    assert any(w.startswith("Poor support") for w in report.warnings)
