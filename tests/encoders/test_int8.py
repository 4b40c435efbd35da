"""Int8 encoders: the quantised copy, its cache folder, the torch fallback, extractor dtypes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from gymnasium import spaces

from rlagent.encoders import (
    EncoderDtypeError,
    Int8Scheme,
    TextFeaturesExtractor,
    build_int8_encoder,
    int8_cache_dir,
    load_encoder,
    normalize_encoder_dtype,
    onnxruntime_available,
)

needs_ort = pytest.mark.skipif(
    not onnxruntime_available(),
    reason="onnxruntime/onnx not installed (pip install rlagent[int8]): ONNX int8 backend untested",
)
LENGTH = 12


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory, monkeypatch):
    """Quantised files go to one temporary folder per test session, never the user's cache."""
    monkeypatch.setenv("RLAGENT_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "rlagent-cache"))


def _space(segments: int = 2) -> spaces.Dict:
    return spaces.Dict(
        {
            "text_input_ids": spaces.Box(0, 500, (segments, LENGTH), np.int64),
            "text_attention_mask": spaces.Box(0, 1, (segments, LENGTH), np.int64),
        }
    )


def _batch(texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    enc = load_encoder("tiny-random")
    tokens = enc.tokenizer(
        texts, padding="max_length", max_length=LENGTH, truncation=True, return_tensors="pt"
    )
    return tokens["input_ids"], tokens["attention_mask"]


TEXTS = ["my card has not arrived", "thanks", "i want a refund for the fee please"]


@needs_ort
def test_int8_hidden_states_have_the_fp32_shapes_and_stay_close():
    enc = load_encoder("tiny-random")
    int8 = build_int8_encoder(enc)
    assert int8.backend == "onnxruntime" and int8.scheme == Int8Scheme()
    ids, mask = _batch(TEXTS)
    got = int8.hidden_states(ids, mask, [-1, 1])
    with torch.no_grad():
        want = enc.model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert [g.shape for g in got] == [(3, LENGTH, 32), (3, LENGTH, 32)]
    assert all(g.dtype == torch.float32 for g in got)
    for g, w in zip(got, (want.hidden_states[-1], want.hidden_states[1]), strict=True):
        cos = torch.nn.functional.cosine_similarity(g.mean(1), w.mean(1), dim=1)
        assert cos.min() > 0.9


@needs_ort
def test_the_quantised_file_is_cached_under_the_encoders_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("RLAGENT_CACHE_DIR", str(tmp_path))
    enc = load_encoder("tiny-random")
    first = build_int8_encoder(enc)
    assert int8_cache_dir() == tmp_path / "int8"
    assert first.path.parent.parent == tmp_path / "int8"
    assert first.path.parent.name.startswith(enc.checksum[:12] + "-attention-channel-uint8-")
    stamp = first.path.stat().st_mtime_ns
    again = build_int8_encoder(enc)
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    other = build_int8_encoder(enc, scheme=Int8Scheme(modules="all", per_channel=False))
    assert other.path != first.path
    assert [p.name for p in (tmp_path / "int8").iterdir() if p.name.startswith(".")] == []


def test_the_torch_fallback_warns_that_it_is_deprecated():
    enc = load_encoder("tiny-random")
    with pytest.warns(FutureWarning, match=re.escape("which PyTorch has deprecated")):
        int8 = build_int8_encoder(enc, backend="torch")
    ids, mask = _batch(TEXTS)
    (last,) = int8.hidden_states(ids, mask)
    assert int8.backend == "torch" and last.shape == (3, LENGTH, 32)
    quantised = [n for n, m in int8._module.named_modules() if "quantized" in type(m).__module__]
    assert quantised and all("attention" in n for n in quantised)


def test_int8_needs_float32_weights():
    enc = load_encoder("tiny-random")
    enc.model.to(torch.bfloat16)
    with pytest.raises(EncoderDtypeError, match=re.escape("is quantised from float32 weights")):
        build_int8_encoder(enc, backend="torch")


def test_scheme_and_dtype_names_are_checked():
    with pytest.raises(ValueError, match=re.escape("Int8Scheme.modules = 'ffn'; expected one of")):
        Int8Scheme(modules="ffn")
    assert normalize_encoder_dtype("bfloat16") == "bf16"
    with pytest.raises(
        EncoderDtypeError,
        match=re.escape("encoder_dtype = 'fp16'; expected one of 'auto', 'fp32', 'bf16', 'int8'"),
    ):
        normalize_encoder_dtype("fp16")


@needs_ort
def test_an_int8_extractor_gives_features_of_the_fp32_shape():
    fp32 = TextFeaturesExtractor(_space(), encoder="tiny-random", layers=[-1, 1], dtype="fp32")
    int8 = TextFeaturesExtractor(_space(), encoder="tiny-random", layers=[-1, 1], dtype="int8")
    assert int8.active_dtype == "int8" and fp32.active_dtype == "fp32"
    ids, mask = _batch(["my card", "", "a refund", "thanks"])
    ids[1], mask[1] = 0, 0  # an absent segment, as TokenizeText writes it
    obs = {
        "text_input_ids": ids.reshape(2, 2, LENGTH),
        "text_attention_mask": mask.reshape(2, 2, LENGTH),
    }
    a, b = fp32(obs), int8(obs)
    assert a.shape == b.shape == (2, 2 * 64)
    assert torch.equal(b[0, 64:], torch.zeros(64))  # the absent segment stays zero
    assert torch.nn.functional.cosine_similarity(a, b, dim=1).min() > 0.9
    # embed() compares dtypes without touching what the policy reads.
    present = mask.any(1)
    assert torch.allclose(
        int8.embed(ids[present], mask[present], dtype="fp32"),
        fp32.embed(ids[present], mask[present]),
    )
    assert int8.active_dtype == "int8"


@needs_ort
def test_set_encoder_dtype_switches_and_empties_the_cache():
    extractor = TextFeaturesExtractor(_space(), encoder="tiny-random", dtype="fp32")
    ids, mask = _batch(["my card", "thanks", "a refund", "the fee"])
    obs = {
        "text_input_ids": ids.reshape(2, 2, LENGTH),
        "text_attention_mask": mask.reshape(2, 2, LENGTH),
    }
    before = extractor(obs)
    assert extractor.cache_info().size == 4
    extractor.set_encoder_dtype("int8")
    assert extractor.cache_info().size == 0 and extractor.int8_encoder is not None
    extractor(obs)
    extractor.set_encoder_dtype("fp32")
    assert torch.allclose(extractor(obs), before)


def test_int8_is_refused_for_trainable_encoders():
    message = (
        "dtype='int8' with mode='full': int8 is a quantised copy of the encoder made for inference"
    )
    with pytest.raises(EncoderDtypeError, match=re.escape(message)):
        TextFeaturesExtractor(_space(), encoder="tiny-random", mode="full", dtype="int8")
    extractor = TextFeaturesExtractor(_space(), encoder="tiny-random", mode="full")
    with pytest.raises(EncoderDtypeError, match=re.escape(message)):
        extractor.set_encoder_dtype("int8")


@needs_ort
def test_the_dtype_bench_reports_every_variant_against_fp32():
    from rlagent.benchmarks.encoder_dtypes import format_dtype_bench, run_dtype_bench

    result = run_dtype_bench(
        encoder="tiny-random", dtypes=["int8", "onnx-fp32"], batch_sizes=[1, 4], quick=True
    )
    assert list(result["variants"]) == ["fp32", "int8", "onnx-fp32"]
    assert set(result["ratios"]) == {f"{v}@{b}" for v in result["variants"] for b in (1, 4)}
    assert result["ratios"]["fp32@1"] == 1.0 and result["int8_backend"] == "onnxruntime"
    assert "| int8 |" in format_dtype_bench(result)
    with pytest.raises(ValueError, match=re.escape("Unknown encoder dtype variant(s) ['fp16']")):
        run_dtype_bench(encoder="tiny-random", dtypes=["fp16"])


@needs_ort
def test_rlagent_bench_encoder_takes_dtypes(capsys):
    import json

    from rlagent.cli import main

    args = ["bench", "encoder", "--encoder", "tiny-random", "--dtypes", "int8", "--quick"]
    assert main([*args, "--batch-sizes", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["benchmark"] == "encoder_dtypes" and list(result["ratios"]) == [
        "fp32@2",
        "int8@2",
    ]
