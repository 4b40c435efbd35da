"""Run directories hold no pickle; resume reads them without unpickling, and old runs need trust."""

from __future__ import annotations

import hashlib
import json
import pathlib
import pickle
import shutil

import pytest
import torch
from crafted_pickles import TouchOnUnpickle

from rlagent.agents import load_model
from rlagent.agents.loading import read_policy_state
from rlagent.agents.trust import is_pickle_file, is_pickled_model
from rlagent.cli import main
from rlagent.training import (
    TrainConfig,
    UntrustedCheckpointError,
    find_latest_checkpoint,
    train,
)
from rlagent.training.checkpoints import list_checkpoints, load_checkpoint_state
from rlagent.training.run_state import load_run_state

ENV_ID = "toyenv:ToyKeyword-v0"
ROLLOUT = 2 * 32


def _config(**changes) -> TrainConfig:
    settings = dict(
        env_id=ENV_ID,
        n_timesteps=2 * ROLLOUT,
        n_envs=2,
        encoder="tiny-random",
        max_length=12,
        ppo={"n_steps": 32, "batch_size": 32, "n_epochs": 2},
        policy_kwargs={"net_arch": [32]},
        eval_freq=ROLLOUT,
        eval_episodes=3,
        checkpoint_freq=ROLLOUT,
        baseline_episodes=3,
        device="cpu",
    )
    settings.update(changes)
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("finished") / "run"
    train(_config(), out)
    return out


def _copy(run: pathlib.Path, target: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(shutil.copytree(run, target))


def _sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _make_pickled(
    checkpoint: pathlib.Path, *, state_payload=None, model_payload=None
) -> pathlib.Path:
    """Rewrite a checkpoint as earlier rlagent versions wrote it: model.zip and state.pkl.

    A payload is added to the pickled state, or to the zip's ``data`` entry (as an SB3
    cloudpickled value); the manifest's checksums are recomputed, as an attacker would.
    """
    model = load_model(checkpoint / "model", device="cpu")
    model.save(checkpoint / "model.zip")
    if model_payload is not None:
        import base64
        import zipfile

        source = checkpoint / "model.zip"
        crafted = checkpoint / "crafted.zip"
        with zipfile.ZipFile(source) as src, zipfile.ZipFile(crafted, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename == "data":
                    entries = json.loads(data)
                    blob = base64.b64encode(pickle.dumps(model_payload)).decode()
                    entries["payload"] = {":type:": "<class 'object'>", ":serialized:": blob}
                    data = json.dumps(entries).encode()
                dst.writestr(item, data)
        crafted.replace(source)
    state = load_run_state(checkpoint)
    if state_payload is not None:
        state["payload"] = state_payload
    with (checkpoint / "state.pkl").open("wb") as handle:
        pickle.dump(state, handle)
    shutil.rmtree(checkpoint / "model")
    for name in ("run_state.json", "run_state.safetensors"):
        (checkpoint / name).unlink()
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest = {
        "timesteps": manifest["timesteps"],
        "files": {name: _sha256(checkpoint / name) for name in ("model.zip", "state.pkl")},
    }
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))
    return checkpoint


def test_a_run_directory_holds_no_pickle(finished_run):
    files = [p for p in finished_run.rglob("*") if p.is_file()]
    assert files and not [p for p in files if is_pickle_file(p) or is_pickled_model(p)]
    assert not list(finished_run.rglob("*.zip")) and not list(finished_run.rglob("*.pkl"))
    checkpoint = find_latest_checkpoint(finished_run / "checkpoints")
    assert not checkpoint.pickled and checkpoint.model_path == checkpoint.path / "model"
    manifest = json.loads((checkpoint.path / "manifest.json").read_text())
    assert sorted(manifest["files"]) == [
        "model/manifest.json",
        "model/model.safetensors",
        "model/optimizer.safetensors",
        "run_state.json",
        "run_state.safetensors",
    ]
    state = load_checkpoint_state(checkpoint)
    assert state["timesteps"] == 2 * ROLLOUT
    assert [e["timesteps"] for e in state["run"]["eval_history"]] == [ROLLOUT]


def test_resuming_continues_exactly_as_from_the_pickled_format(finished_run, tmp_path):
    """The same run resumed from a safe checkpoint and from its pickled twin ends identically."""
    safe = _copy(finished_run, tmp_path / "safe")
    old = _copy(finished_run, tmp_path / "old")
    _make_pickled(find_latest_checkpoint(old / "checkpoints").path)
    longer = _config(n_timesteps=4 * ROLLOUT)
    with pytest.raises(UntrustedCheckpointError):
        train(longer, old, resume=True)
    a = train(longer, safe, resume=True)
    b = train(longer, old, resume=True, trust=True)
    assert a.timesteps == b.timesteps == 4 * ROLLOUT
    strip = ("wall_time_s",)
    history_a = [{k: v for k, v in e.items() if k not in strip} for e in a.metrics["eval_history"]]
    history_b = [{k: v for k, v in e.items() if k not in strip} for e in b.metrics["eval_history"]]
    assert history_a == history_b
    weights_a, weights_b = read_policy_state(safe / "model"), read_policy_state(old / "model")
    assert sorted(weights_a) == sorted(weights_b)
    for key in weights_a:
        assert torch.equal(weights_a[key], weights_b[key]), key
    # The old run now writes safe checkpoints, which resume without trust.
    assert not find_latest_checkpoint(old / "checkpoints").pickled
    assert train(None, old, resume=True).already_finished


def test_resume_of_a_crafted_old_checkpoint_runs_no_code(finished_run, tmp_path, capsys):
    out = _copy(finished_run, tmp_path / "run")
    state_marker, model_marker = tmp_path / "state-payload-ran", tmp_path / "model-payload-ran"
    checkpoint = _make_pickled(
        find_latest_checkpoint(out / "checkpoints").path,
        state_payload=TouchOnUnpickle(state_marker),
        model_payload=TouchOnUnpickle(model_marker),
    )
    assert main(["train", "--resume", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"rlagent train: error: {checkpoint} is a checkpoint in the older pickled format "
        "(model.zip, state.pkl): resuming from it runs code stored in those pickles, which can "
        "do anything a program you run can do. If you wrote this run yourself or trust its "
        "source, resume with --trust (trust=True); the checkpoints it writes from then on hold "
        "only weights and JSON.\n"
    )
    assert not state_marker.exists() and not model_marker.exists()
    # The control: read with trust, the crafted state does run its payload.
    latest = find_latest_checkpoint(out / "checkpoints")
    with pytest.raises(UntrustedCheckpointError):
        load_checkpoint_state(latest)
    load_checkpoint_state(latest, trust=True)
    assert state_marker.exists()


def test_pickles_beside_a_safe_checkpoint_are_never_read(finished_run, tmp_path):
    out = _copy(finished_run, tmp_path / "run")
    marker = tmp_path / "payload-ran"
    checkpoint = find_latest_checkpoint(out / "checkpoints")
    for name in ("state.pkl", "model.zip"):
        (checkpoint.path / name).write_bytes(pickle.dumps(TouchOnUnpickle(marker)))
    assert [c.timesteps for c in list_checkpoints(out / "checkpoints")][-1] == 2 * ROLLOUT
    (out / "report.md").unlink()  # so that resume loads the checkpoint and finishes the run
    result = train(None, out, resume=True)
    assert not result.already_finished and (out / "report.md").is_file()
    assert not marker.exists()
