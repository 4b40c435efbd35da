"""Pickled models load only when trusted: a crafted SB3 zip runs no code unless the user says so."""

from __future__ import annotations

import pickle
import re
import zipfile

import numpy as np
import pytest
import torch
from crafted_pickles import TouchOnUnpickle, crafted_sb3_data
from tiny_models import TINY

import rlagent
from rlagent.agents import (
    ModelFileError,
    UntrustedModelError,
    export_model,
    is_pickled_model,
    load,
    load_model,
    make_ppo,
    save_model,
)
from rlagent.agents.trust import is_pickle_file, untrusted_model_message

CS = "rlagent/CustomerService-v0"


@pytest.fixture(scope="module")
def harmless_zip(tmp_path_factory):
    model = make_ppo(CS, **TINY)
    path = tmp_path_factory.mktemp("zips") / "model.zip"
    model.save(path)
    return path


@pytest.fixture
def crafted_zip(harmless_zip, tmp_path):
    marker = tmp_path / "payload-ran"
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(harmless_zip) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "data":
                data = crafted_sb3_data(data, marker).encode()
            dst.writestr(item, data)
    return path, marker


def test_the_crafted_zip_really_runs_its_payload_when_unpickled(crafted_zip):
    # The control: SB3's own reader of the `data` entry executes the payload.
    from stable_baselines3.common.save_util import json_to_data

    path, marker = crafted_zip
    with zipfile.ZipFile(path) as archive:
        json_to_data(archive.read("data").decode())
    assert marker.exists()


def test_load_refuses_a_crafted_zip_and_runs_nothing(crafted_zip):
    path, marker = crafted_zip
    assert is_pickled_model(path)
    with pytest.raises(UntrustedModelError, match=re.escape(untrusted_model_message(path))):
        load(path, trust=False)
    with pytest.raises(UntrustedModelError):
        rlagent.load(path, trust=False)
    with pytest.raises(ModelFileError, match=re.escape(f"{path} is a file, not a model directory")):
        load_model(path)
    assert not marker.exists()


def test_the_refusal_says_why_and_how(tmp_path):
    message = untrusted_model_message(tmp_path / "m.zip")
    assert "loading it runs code stored in its pickle" in message
    assert "trust=True (--trust on the command line)" in message
    assert f"`rlagent export {tmp_path / 'm.zip'} OUT`" in message


def test_a_pickled_model_is_refused_by_default(crafted_zip, harmless_zip):
    path, marker = crafted_zip
    for file in (harmless_zip, path):
        with pytest.raises(UntrustedModelError, match=re.escape(untrusted_model_message(file))):
            load(file, device="cpu")
        with pytest.raises(UntrustedModelError):
            rlagent.load(file)
    assert not marker.exists()


def test_a_trusted_zip_loads(harmless_zip):
    model = load(harmless_zip, device="cpu", trust=True)
    assert model.rlagent_spec["env_id"] == CS


def test_a_zip_without_data_is_a_one_line_error_even_when_trusted(harmless_zip, tmp_path):
    path = tmp_path / "nodata.zip"
    with zipfile.ZipFile(harmless_zip) as src, zipfile.ZipFile(path, "w") as dst:
        for item in src.infolist():
            if item.filename != "data":
                dst.writestr(item, src.read(item.filename))
    with pytest.raises(
        ModelFileError, match=re.escape(f"{path} could not be read as a Stable-Baselines3 model")
    ):
        load(path, trust=True)


def test_export_converts_a_trusted_zip_into_a_model_that_loads_safely(harmless_zip, tmp_path):
    out = export_model(harmless_zip, tmp_path / "model")
    assert not is_pickled_model(out)
    original = load(harmless_zip, device="cpu", trust=True)
    exported = load(out, device="cpu")
    for key, value in original.policy.state_dict().items():
        assert torch.equal(value, exported.policy.state_dict()[key]), key
    assert exported.rlagent_spec == original.rlagent_spec
    with pytest.raises(ModelFileError, match=re.escape("is already a safe model directory")):
        export_model(out, tmp_path / "again")
    with pytest.raises(ModelFileError, match=re.escape(f"No model at {tmp_path / 'x.zip'}")):
        export_model(tmp_path / "x.zip", tmp_path / "again")


def test_pickles_of_every_kind_are_recognised_without_unpickling(tmp_path):
    marker = tmp_path / "ran"
    for protocol in (0, 1, 2, 5):
        file = tmp_path / f"p{protocol}.pkl"
        file.write_bytes(pickle.dumps(TouchOnUnpickle(marker), protocol=protocol))
        assert is_pickle_file(file) and is_pickled_model(file), protocol
    torch.save({"w": torch.zeros(2)}, tmp_path / "t.pt")
    assert is_pickled_model(tmp_path / "t.pt")
    assert not marker.exists()
    (tmp_path / "m.json").write_text('{"a": [1, 2]}')
    np.save(tmp_path / "a.npy", np.zeros(3))
    with zipfile.ZipFile(tmp_path / "plain.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    for name in ("m.json", "a.npy", "plain.zip", "missing.zip"):
        assert not is_pickled_model(tmp_path / name), name
    assert not is_pickled_model(tmp_path)


def test_a_saved_model_directory_is_not_pickled(harmless_zip, tmp_path):
    path = save_model(load(harmless_zip, device="cpu", trust=True), tmp_path / "model")
    assert not is_pickled_model(path)
    assert not any(is_pickle_file(file) for file in path.iterdir())
