from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
from logged_sessions import (
    CS_ID,
    CS_KWARGS,
    REC_ID,
    REC_KWARGS,
    assert_same,
    cs_decisions,
    rec_decisions,
)

from rlagent.serving.interaction_log import InteractionLog, decode_json

minari = pytest.importorskip(
    "minari", reason="exporting needs minari (pip install rlagent[datasets])"
)
pytest.importorskip("pyarrow", reason="minari's arrow format needs pyarrow")

from rlagent.cli import main  # noqa: E402
from rlagent.datasets import DatasetError, read_episodes  # noqa: E402
from rlagent.serving.log_export import LogExportError, export_minari  # noqa: E402


@pytest.fixture
def cs_log(tmp_path):
    """Three sessions: ended with feedback, open, and one without decisions."""
    path = tmp_path / "cs.sqlite"
    with InteractionLog(path, model_hash="m1", env_id=CS_ID, env_kwargs=CS_KWARGS) as log:
        log.start_session("ended", kind="customer_service", meta={"user": "u1"})
        log.record_decisions(cs_decisions("ended", 4, seed=0))
        log.record_feedback("ended", step=1, reward=-0.5)
        log.record_feedback("ended", step=1, reward=0.25, meta={"why": "slow"})
        log.record_feedback("ended", resolved=True, rating=4, reward=1.0)
        log.end_session("ended", "done")
        log.start_session("empty", kind="customer_service")
        log.start_session("open", kind="customer_service")
        log.record_decisions(cs_decisions("open", 3, seed=5, model_hash="m2"))
        log.record_feedback("open", resolved=False)  # no reward: 0
    return path


def _expected_vector(row, names):
    if isinstance(row.probabilities, dict):
        return np.array([row.probabilities.get(n, 0.0) for n in names])
    return np.asarray(row.probabilities, dtype=np.float64)


def test_customer_service_log_round_trips_through_minari(cs_log, tmp_path):
    import gymnasium as gym

    out = export_minari(cs_log, tmp_path / "ds")
    assert out == tmp_path / "ds"
    names = gym.make(CS_ID, **CS_KWARGS).unwrapped.action_names
    episodes = read_episodes(out)
    assert len(episodes) == 2
    log = InteractionLog.for_reading(cs_log)
    for episode, sid, ended in zip(episodes, ["ended", "open"], [True, False], strict=True):
        rows = log.decisions(sid)
        steps = len(rows)
        assert len(episode) == steps and len(episode.observations) == steps + 1
        for t, row in enumerate(rows):
            assert_same(episode.observations[t], row.observation, f"{sid} obs {t}")
        assert_same(episode.observations[-1], rows[-1].observation)  # final: repeats the last
        assert episode.actions.tolist() == [r.action for r in rows]
        assert (episode.terminated, episode.truncated) == (ended, not ended)
        assert episode.propensities.tolist() == [r.propensity for r in rows]
        expected = np.stack([_expected_vector(r, names) for r in rows])
        np.testing.assert_array_equal(episode.action_probabilities, expected)
        info = episode.infos
        assert info["model_hash"][:steps].tolist() == [r.model_hash for r in rows]
        assert info["session_id"].tolist() == [sid] * (steps + 1)
        assert info["time"][:steps].tolist() == [r.time for r in rows]
        assert info["step"].tolist() == [*range(steps), -1]
        assert info["action_name"][:steps].tolist() == [r.action_name for r in rows]
        assert info["observation_text"][:steps].tolist() == [r.observation_text for r in rows]
        assert [decode_json(p) for p in info["planner"][:steps]] == [r.planner for r in rows]
        assert np.isnan(info["propensity"][steps])
        assert episode.metadata["session"]["session_id"] == sid
    ended, still_open = episodes
    assert ended.rewards.tolist() == [0.0, -0.25, 0.0, 1.0]
    assert still_open.rewards.tolist() == [0.0, 0.0, 0.0]
    session_feedback = decode_json(ended.infos["feedback"][-1])
    assert [(f["reward"], f["resolved"], f["rating"]) for f in session_feedback] == [(1.0, True, 4)]
    assert [f["meta"] for f in decode_json(ended.infos["feedback"][1])] == [{}, {"why": "slow"}]
    assert decode_json(still_open.infos["feedback"][-1])[0]["resolved"] is False
    assert ended.metadata["session"]["end_reason"] == "done"
    log.close()

    # Minari reads it too, with the env's own spaces.
    dataset = minari.MinariDataset(out / "data")
    assert dataset.total_episodes == 2 and dataset.total_steps == 7
    assert dataset.observation_space == gym.make(CS_ID, **CS_KWARGS).observation_space
    assert dataset.env_spec.kwargs == CS_KWARGS
    rlagent_meta = dataset.storage.metadata["rlagent"]
    assert rlagent_meta["skipped_sessions"] == ["empty"]
    assert rlagent_meta["info_alignment"] == "decision"


def test_recommendation_slates_round_trip(tmp_path):
    path = tmp_path / "rec.sqlite"
    with InteractionLog(path, model_hash="r1", env_id=REC_ID, env_kwargs=REC_KWARGS) as log:
        log.start_session("r", kind="recommendation")
        rows = rec_decisions("r", 4, seed=2)
        log.record_decisions(rows)
        log.record_feedback("r", step=2, reward=4.0, meta={"clicked": 1})
        log.end_session("r", "expired")
    (episode,) = read_episodes(export_minari(path, tmp_path / "ds", dataset_id="rec/logs-v1"))
    n, k = REC_KWARGS["n_candidates"], REC_KWARGS["slate_size"]
    assert episode.actions.shape == (4, k) and episode.actions.tolist() == [r.action for r in rows]
    assert episode.action_probabilities.shape == (4, n**k)
    for t, row in enumerate(rows):
        assert_same(episode.observations[t], row.observation)
        flat = int(np.ravel_multi_index(tuple(row.action), (n,) * k))
        assert episode.action_probabilities[t, flat] == episode.propensities[t]
    np.testing.assert_allclose(episode.action_probabilities.sum(axis=1), 1.0)
    assert episode.rewards.tolist() == [0.0, 0.0, 4.0, 0.0]
    assert minari.MinariDataset(tmp_path / "ds" / "data").spec.dataset_id == "rec/logs-v1"


def test_an_existing_folder_is_replaced_only_with_overwrite(cs_log, tmp_path):
    out = tmp_path / "ds"
    export_minari(cs_log, out)
    message = (
        f"{out} is not empty; pass --overwrite (overwrite=True) to replace an earlier export "
        "there, or choose a new folder."
    )
    with pytest.raises(LogExportError, match=re.escape(message)):
        export_minari(cs_log, out)
    export_minari(cs_log, out, overwrite=True)
    assert len(read_episodes(out)) == 2
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("keep me")
    with pytest.raises(LogExportError, match=re.escape("holds files that rlagent logs export")):
        export_minari(cs_log, foreign, overwrite=True)
    assert (foreign / "thesis.tex").read_text() == "keep me"


def test_a_malformed_dataset_id_is_refused(cs_log, tmp_path):
    with pytest.raises(LogExportError, match=re.escape("dataset id 'a b' is malformed")):
        export_minari(cs_log, tmp_path / "ds", dataset_id="a b")
    assert not (tmp_path / "ds").exists()


def test_export_with_the_wrong_env_says_so(cs_log, tmp_path):
    with pytest.raises(LogExportError, match=re.escape("export with the env the log was written")):
        export_minari(cs_log, tmp_path / "ds", env_id=REC_ID, env_kwargs=REC_KWARGS)


def test_cli_exports_and_reports_errors_in_one_line(cs_log, tmp_path, capsys):
    out = tmp_path / "ds"
    assert (
        main(["logs", "export", str(cs_log), "--to", str(out), "--dataset-id", "logs/support-v0"])
        == 0
    )
    assert "Wrote 2 episodes (7 decisions) to" in capsys.readouterr().out
    assert (
        json.loads((out / "data" / "metadata.json").read_text())["dataset_id"] == "logs/support-v0"
    )
    assert main(["logs", "export", str(cs_log), "--to", str(out)]) == 2
    assert "rlagent logs: error: " in capsys.readouterr().err
    assert main(["logs", "export", str(cs_log), "--to", str(out), "--overwrite"]) == 0
    missing = tmp_path / "nope.sqlite"
    assert main(["logs", "export", str(missing), "--to", str(tmp_path / "d2")]) == 2
    assert f"No interaction log at {missing}" in capsys.readouterr().err


def test_read_episodes_refuses_a_folder_that_is_no_dataset(tmp_path):
    message = f"{tmp_path} is not a Minari dataset (no data/metadata.json in it)"
    with pytest.raises(DatasetError, match=re.escape(message)):
        read_episodes(tmp_path)


def test_a_log_without_decisions_exports_no_episodes(tmp_path):
    path = tmp_path / "log.sqlite"
    with InteractionLog(path, model_hash="m", env_id=CS_ID, env_kwargs=CS_KWARGS) as log:
        log.start_session("idle", kind="customer_service")
    assert read_episodes(export_minari(path, tmp_path / "ds")) == []


def test_without_minari_the_error_says_what_to_install(cs_log, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)
    message = 'Exporting to Minari needs minari: install it with pip install "rlagent[datasets]"'
    with pytest.raises(ImportError, match=re.escape(message)):
        export_minari(cs_log, tmp_path / "ds")
    with pytest.raises(ImportError, match=re.escape('pip install "rlagent[datasets]"')):
        read_episodes(tmp_path)


def test_export_to_a_relative_folder_reads_back(cs_log, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = export_minari(cs_log, "exports/relative")
    assert out == tmp_path / "exports" / "relative"
    assert len(read_episodes("exports/relative")) == len(read_episodes(out)) > 0
