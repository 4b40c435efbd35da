"""A run's state saved as JSON + safetensors: exact round trips, and old pickles refused."""

from __future__ import annotations

import pickle
import random
import re

import numpy as np
import pytest
import torch
from crafted_pickles import TouchOnUnpickle

from rlagent.agents.trust import is_pickle_file
from rlagent.training.checkpoints import restore_rng_state
from rlagent.training.run_state import (
    RunStateError,
    UntrustedRunStateError,
    capture_rng_state,
    load_pickled_run_state,
    load_run_state,
    save_run_state,
    set_rng_state,
)


def _draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def _optimizer_state() -> dict:
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([weight], lr=0.1)
    weight.sum().backward()
    optimizer.step()
    return optimizer.state_dict()


def test_a_run_state_round_trips_exactly(tmp_path):
    run = {
        "eval_history": [{"timesteps": 64, "mean_return": np.float64(1.5), "episodes": 4}],
        "best_mean_return": float("-inf"),
        "best_timesteps": None,
        "auxiliary_optimizer": _optimizer_state(),
        "shape": (2, 3),
        "counts": np.arange(4, dtype=np.uint32),
    }
    files = save_run_state(tmp_path, {"run": run, "timesteps": 64})
    assert [f.name for f in files] == ["run_state.json", "run_state.safetensors"]
    assert not any(is_pickle_file(f) for f in files)
    loaded = load_run_state(tmp_path)["run"]
    assert loaded["eval_history"] == [{"timesteps": 64, "mean_return": 1.5, "episodes": 4}]
    assert loaded["best_mean_return"] == float("-inf") and loaded["best_timesteps"] is None
    assert loaded["shape"] == (2, 3)
    assert loaded["counts"].dtype == np.uint32 and loaded["counts"].tolist() == [0, 1, 2, 3]
    state = loaded["auxiliary_optimizer"]
    original = run["auxiliary_optimizer"]
    assert list(state["state"]) == [0]
    assert state["param_groups"] == original["param_groups"]
    for key, value in original["state"][0].items():
        assert torch.equal(state["state"][0][key], value), key
    weight = torch.nn.Parameter(torch.ones(3))
    torch.optim.Adam([weight], lr=0.1).load_state_dict(state)


def test_random_generators_continue_where_they_were_saved(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draws()
    save_run_state(tmp_path, {"rng": capture_rng_state()})
    expected = _draws()
    _draws()
    set_rng_state(load_run_state(tmp_path)["rng"])
    assert _draws() == expected
    # The loaded state is a drop-in replacement for an old state.pkl's content.
    restore_rng_state(load_run_state(tmp_path))
    assert _draws() == expected


def test_a_value_json_cannot_hold_is_refused_with_its_place(tmp_path):
    with pytest.raises(
        RunStateError, match=re.escape("run state['run']['callback'] is a function;")
    ):
        save_run_state(tmp_path, {"run": {"callback": lambda: None}})


def test_a_crafted_state_pkl_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"run": TouchOnUnpickle(marker)}))
    with pytest.raises(
        UntrustedRunStateError,
        match=re.escape(
            f"{path} is a pickled run state: loading it runs code stored in the pickle"
        ),
    ):
        load_pickled_run_state(path)
    with pytest.raises(
        RunStateError, match=re.escape("It holds an older state.pkl instead, which is a pickle")
    ):
        load_run_state(tmp_path)
    assert not marker.exists()


def test_a_trusted_state_pkl_loads(tmp_path):
    path = tmp_path / "state.pkl"
    path.write_bytes(pickle.dumps({"run": {"eval_history": []}, "timesteps": 3}))
    assert load_pickled_run_state(path, trust=True)["timesteps"] == 3


def test_damaged_run_state_files_are_one_line_errors(tmp_path):
    save_run_state(tmp_path, {"rng": capture_rng_state()})
    tensors = tmp_path / "run_state.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:50])
    with pytest.raises(RunStateError, match=re.escape("run_state.safetensors is truncated or")):
        load_run_state(tmp_path)
    (tmp_path / "run_state.json").write_text("{")
    with pytest.raises(RunStateError, match=re.escape("run_state.json is not valid JSON")):
        load_run_state(tmp_path)
