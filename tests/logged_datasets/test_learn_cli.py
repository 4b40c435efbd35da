"""rlagent learn on a dataset exported from an interaction log, and rlagent train --init."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("minari", reason="datasets need minari (pip install rlagent[datasets])")
pytest.importorskip("pyarrow", reason="minari's arrow format needs pyarrow")

import rlagent  # noqa: E402,F401  (registers the envs)
from rlagent.agents import load_model  # noqa: E402
from rlagent.cli import main  # noqa: E402
from rlagent.datasets import episode_outcome, read_episodes  # noqa: E402
from rlagent.serving import DecisionRecord, InteractionLog, export_minari  # noqa: E402

CS = "rlagent/CustomerService-v0"
CS_KWARGS = {"history": 3, "max_turns": 5}
TINY_FLAGS = ["--encoder", "tiny-random", "--encoder-layers", "-1"]


def _log(path, sessions: int, seed: int) -> None:
    """A uniformly random logger; per-step rewards, and whether each session was resolved."""
    env = gym.make(CS, **CS_KWARGS)
    names = env.unwrapped.action_names
    rng = np.random.default_rng(seed)
    probs = [1 / len(names)] * len(names)
    with InteractionLog(path, model_hash="v1", env_id=CS, env_kwargs=CS_KWARGS) as log:
        for s in range(sessions):
            sid = f"s{s}"
            log.start_session(sid, kind="test")
            obs, _ = env.reset(seed=seed + s)
            done, t, info = False, 0, {}
            while not done:
                action = int(rng.integers(len(names)))
                record = DecisionRecord(
                    sid, t, 1e9 + t, obs, "", action, names[action], probs, None, "v1"
                )
                log.record_decisions([record])
                obs, reward, terminated, truncated, info = env.step(action)
                log.record_feedback(sid, step=t, reward=float(reward))
                done, t = terminated or truncated, t + 1
            log.record_feedback(sid, resolved=bool(info.get("success")))
            log.end_session(sid, "done")
    env.close()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("learn-cli")
    _log(root / "log.db", sessions=10, seed=0)
    return export_minari(root / "log.db", root / "ds")


def test_learn_writes_a_model_from_an_exported_log(dataset, tmp_path, capsys):
    episodes = read_episodes(dataset)
    # Outcomes come from the sessions' `resolved` feedback (the session's own, in entry T).
    resolved = [json.loads(e.infos["feedback"][-1])[-1]["resolved"] for e in episodes]
    assert [episode_outcome(e) for e in episodes] == resolved
    out = tmp_path / "v2"
    argv = ["learn", str(dataset), "--out", str(out), "--epochs", "2", "--json", *TINY_FLAGS]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model_path"] == str(out) and report["episodes"] == 10
    assert report["train_episodes"] == 8 and len(report["val_episode_ids"]) == 2
    assert len(report["losses"]) == 2 and report["settings"]["env_id"] == CS
    assert report["settings"]["env_kwargs"] == CS_KWARGS  # the dataset's
    assert set(report["val"]) == {"agreement", "weighted_agreement", "weighted_loss", "value_loss"}
    assert load_model(out, device="cpu").rlagent_spec["offline"]["dataset"] == str(dataset)
    # From that model, with AWR, printed as text.
    argv = ["learn", str(dataset), "--out", str(tmp_path / "v3"), "--init", str(out)]
    assert main([*argv, "--method", "awr", "--epochs", "1"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("Learnt awr from 8 of 10 episodes")
    assert f"rlagent train --env {CS} --init {tmp_path / 'v3'}" in text
    # Mistakes are one-line errors.
    assert main(["learn", str(dataset), "--out", str(out), *TINY_FLAGS]) == 2
    assert "exists and is not empty; pass overwrite=True (--overwrite)" in capsys.readouterr().err
    assert main(["learn", str(tmp_path), "--out", str(tmp_path / "v4")]) == 2
    assert "is not a Minari dataset" in capsys.readouterr().err


def test_train_init_reaches_the_config(monkeypatch, tmp_path):
    import rlagent.training

    seen = {}

    class Stop(Exception):
        pass

    def fake_train(config, *args, **kwargs):
        seen["init"] = config.init_model
        raise Stop

    monkeypatch.setattr(rlagent.training, "train", fake_train)
    base = ["train", "--env", CS, "--out", str(tmp_path / "run")]
    with pytest.raises(Stop):
        main([*base, "--init", str(tmp_path / "v2")])
    assert seen["init"] == str(tmp_path / "v2")
    with pytest.raises(Stop):
        main(base)
    assert seen["init"] is None
