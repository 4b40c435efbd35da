"""Encoder dtype settings, save/load of the dtype, and the int8 acceptance gate."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from rlagent.agents import (
    AgentConfig,
    ConfigError,
    EncoderDtypeError,
    check_agreement,
    encoder_dtype_of,
    load_model,
    make_ppo,
    resolve_encoder_dtype,
    save_model,
    set_encoder_dtype,
)
from rlagent.agents.saving import read_manifest
from rlagent.encoders import onnxruntime_available
from rlagent.training import load_config

needs_ort = pytest.mark.skipif(
    not onnxruntime_available(),
    reason="onnxruntime/onnx not installed (pip install rlagent[int8]): ONNX int8 backend untested",
)
CS = "rlagent/CustomerService-v0"
ENV_KWARGS = {"corpus": "core", "split": "test"}
TINY = dict(
    config=AgentConfig(),
    encoder="tiny-random",
    encoder_layers=[-1, 1],
    seed=0,
    device="cpu",
    max_length=16,
    n_envs=1,
    n_steps=16,
    batch_size=16,
    env_kwargs={"corpus": "core"},
)


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("RLAGENT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "rlagent-cache"))


# ----------------------------------------------------------------------------- settings
def test_encoder_dtype_setting_and_its_older_name():
    assert AgentConfig().encoder_dtype == "auto"
    assert AgentConfig(encoder_dtype="int8").encoder_dtype == "int8"
    older = AgentConfig(dtype="float32")
    assert older.encoder_dtype == "fp32" and older.dtype is None
    assert "dtype" not in older.to_dict() and older.to_dict()["encoder_dtype"] == "fp32"
    assert AgentConfig(dtype="auto", encoder_dtype="int8").encoder_dtype == "int8"
    assert AgentConfig().merged({"dtype": "bfloat16"}).encoder_dtype == "bf16"
    config = load_config("toyenv:ToyKeyword-v0", encoder_dtype="int8")
    assert config.encoder_dtype == "int8"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"encoder_dtype": "int8", "encoder_mode": "lora"},
            "encoder_dtype = 'int8' with encoder_mode = 'lora': int8 is a quantised copy of the "
            "encoder made for inference (dynamic quantisation has no gradients), so it works only "
            "with encoder_mode 'frozen'",
        ),
        (
            {"encoder_dtype": "fp16"},
            "encoder_dtype = 'fp16'; expected one of 'auto', 'fp32', 'bf16', 'int8'",
        ),
        (
            {"dtype": "bfloat16", "encoder_dtype": "int8"},
            "dtype = 'bfloat16' and encoder_dtype = 'int8' disagree; dtype is the older name of "
            "encoder_dtype: keep encoder_dtype only",
        ),
    ],
)
def test_bad_encoder_dtype_settings_say_why(settings, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        AgentConfig(**settings)


def test_the_cli_takes_encoder_dtype():
    from rlagent.cli import build_parser

    args = build_parser().parse_args(["train", "--env", CS, "--encoder-dtype", "int8"])
    assert args.encoder_dtype == "int8"


# ----------------------------------------------------------------------------- save / load
@pytest.fixture(scope="module")
def tiny_model():
    model = make_ppo(CS, **TINY)
    model.learn(16)
    return model


@needs_ort
def test_an_int8_agent_is_saved_and_loaded_in_int8(tmp_path):
    model = make_ppo(CS, encoder_dtype="int8", **TINY)
    assert encoder_dtype_of(model) == "int8"
    assert model.rlagent_spec["encoder_dtype"] == "int8"
    save_model(model, tmp_path / "m")
    kwargs = read_manifest(tmp_path / "m")["policy"]["kwargs"]["features_extractor_kwargs"]
    assert kwargs["dtype"] == "int8"
    loaded = load_model(tmp_path / "m")
    assert encoder_dtype_of(loaded) == "int8"
    assert loaded.policy.features_extractor.int8_encoder.backend == "onnxruntime"


@needs_ort
def test_a_switched_agent_saves_its_new_dtype(tiny_model, tmp_path):
    set_encoder_dtype(tiny_model, "int8")
    try:
        save_model(tiny_model, tmp_path / "m")
    finally:
        set_encoder_dtype(tiny_model, "fp32")
    assert encoder_dtype_of(load_model(tmp_path / "m")) == "int8"
    assert encoder_dtype_of(tiny_model) == "fp32"


# ----------------------------------------------------------------------------- agreement
def test_fp32_against_itself_agrees_fully(tiny_model):
    report = check_agreement(
        tiny_model, CS, dtype="fp32", env_kwargs=ENV_KWARGS, observations=40, seed=3
    )
    assert report.min_cosine == pytest.approx(1.0, abs=1e-6)
    assert report.mean_cosine == pytest.approx(1.0, abs=1e-6)
    assert report.action_agreement == 1.0 and report.n_observations == 40
    assert report.n_texts > 0 and report.accepted
    assert report.env == "rlagent/CustomerService-v0 corpus=core split=test"


class _Negated:
    """An int8 stand-in whose hidden states are fp32's negated (pooled cosine exactly -1)."""

    backend = "broken"

    def __init__(self, model):
        self.model = model

    def hidden_states(self, ids, mask, layers=None):
        with torch.no_grad():
            out = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return [-out.hidden_states[i] for i in (layers or [-1])]


@needs_ort
def test_the_figures_are_computed_as_documented(tiny_model):
    extractor = tiny_model.policy.features_extractor
    extractor.set_encoder_dtype("int8")  # builds the int8 copy, then swap in a broken one
    extractor.set_encoder_dtype("fp32")
    extractor.__dict__["_int8"] = _Negated(extractor.model)
    try:
        report = check_agreement(tiny_model, CS, env_kwargs=ENV_KWARGS, observations=30)
        texts = check_agreement(tiny_model, texts=["my card is lost", "thanks", "thanks"])
        # The same actions by hand: the fp32 policy and the negated one on the same batch.
        from rlagent.agents.encoder_dtype import _collect, _make_env, _predict

        env, _ = _make_env(tiny_model, CS, ENV_KWARGS)
        batch, _ = _collect(tiny_model, env, 30, 0)
        fp32 = _predict(tiny_model, batch)
        extractor.set_encoder_dtype("int8")
        negated = _predict(tiny_model, batch)
    finally:
        extractor.set_encoder_dtype("fp32")
        extractor.__dict__["_int8"] = None
    assert report.min_cosine == pytest.approx(-1.0, abs=1e-5)
    assert report.mean_cosine == pytest.approx(-1.0, abs=1e-5)
    assert report.action_agreement == pytest.approx(float(np.mean(fp32 == negated)))
    assert not report.accepted and report.backend == "broken"
    assert texts.n_texts == 2 and texts.action_agreement is None and not texts.accepted


@needs_ort
def test_the_gate_switches_to_int8_when_it_agrees(tiny_model):
    report = resolve_encoder_dtype(tiny_model, CS, "int8", env_kwargs=ENV_KWARGS, observations=40)
    try:
        assert report.accepted and report.min_cosine >= 0.99
        assert encoder_dtype_of(tiny_model) == "int8"
    finally:
        set_encoder_dtype(tiny_model, "fp32")


@needs_ort
def test_the_gate_refuses_with_the_figures_below_the_bar(tiny_model):
    message = (
        "The int8 encoder does not agree with fp32 closely enough to serve this agent: int8 "
        "(onnxruntime) vs fp32: embedding cosine min "
    )
    with pytest.raises(EncoderDtypeError, match=re.escape(message)) as info:
        resolve_encoder_dtype(
            tiny_model, CS, "int8", env_kwargs=ENV_KWARGS, observations=20, min_cosine=1.01
        )
    assert re.search(
        r"same action on [\d.]+% of 20 test observations: refused \(needs min cosine >= 1.01 "
        r"and >= 99% same actions\)\. Serve with --encoder-dtype bf16 \(or fp32\) instead\.$",
        str(info.value),
    )
    assert encoder_dtype_of(tiny_model) == "fp32"


def test_other_dtypes_are_switched_to_without_a_check(tiny_model):
    try:
        assert resolve_encoder_dtype(tiny_model, CS, "bf16") is None
        assert encoder_dtype_of(tiny_model) == "bf16"
    finally:
        set_encoder_dtype(tiny_model, "fp32")
    assert encoder_dtype_of(tiny_model) == "fp32"
