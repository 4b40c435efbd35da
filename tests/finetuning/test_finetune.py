"""finetune writes a model folder that every encoder reader accepts, with a working head."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
from conftest import TINY
from safetensors import safe_open

from rlagent.encoders import EncoderNotFoundError, load_encoder
from rlagent.finetuning import (
    MARKER,
    FinetuneConfigError,
    FinetuneOutputExistsError,
    ForeignOutputError,
    evaluate_classifier,
    finetune,
    is_finetune_output,
    load_classifier,
)
from rlagent.finetuning import run as run_module
from rlagent.finetuning.data import prepare_data

PROBE_ONLY = dataclasses.replace(TINY, epochs=0, head_epochs=1)
FILES = {
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "classifier.safetensors",
    "classifier.json",
    "finetune.json",
    "README.md",
    MARKER,
}


def _weights(folder) -> dict[str, np.ndarray]:
    with safe_open(str(folder / "model.safetensors"), "pt") as handle:
        return {key: handle.get_tensor(key).numpy() for key in handle.keys()}  # noqa: SIM118


def test_full_output_is_an_encoder_folder(full_output):
    from transformers import AutoModel, AutoTokenizer

    result, out = full_output
    assert {p.name for p in out.iterdir()} == FILES  # the Trainer's checkpoints are gone
    assert is_finetune_output(out) and result.out == out
    encoder = load_encoder(str(out))
    assert encoder.hidden_size == 32 and encoder.path == str(out)
    model = AutoModel.from_pretrained(str(out), local_files_only=True)
    assert model.config.hidden_size == 32
    assert AutoTokenizer.from_pretrained(str(out))("lost card")["input_ids"]
    start = load_encoder("tiny-random").model.state_dict()
    changed = [k for k, v in _weights(out).items() if k in start and not np.allclose(v, start[k])]
    assert changed, "full fine-tuning changed no encoder weight"


def test_classifier_probabilities(full_output):
    _, out = full_output
    classifier = load_classifier(out)
    assert classifier.labels == ("change_pin", "lost_or_stolen_card", "request_refund")
    texts = ["i lost my card", "refund my money please", "reset the code"]
    proba = classifier.predict_proba(texts)
    assert proba.shape == (3, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-9)
    np.testing.assert_allclose(classifier.predict_proba(texts[1]), proba[1:2], atol=1e-5)
    assert classifier.group_names == ("card_security", "refunds_charges")
    groups = classifier.predict_group_proba(texts)
    np.testing.assert_allclose(groups[:, 0], proba[:, 0] + proba[:, 1], atol=1e-9)
    assert classifier.predict_proba([]).shape == (0, 3)


def test_results_and_model_card(full_output, train_csv, test_csv):
    result, out = full_output
    data = prepare_data(train_csv, TINY)
    assert result.scores["validation"]["n"] == len(data.val_texts) == 6
    assert result.scores["test"]["n"] == 24
    assert [h["epoch"] for h in result.history] == [1, 2]
    assert all("eval_accuracy" in h and "train_loss" in h for h in result.history)
    assert result.best_epoch in (1, 2) and result.train_steps > 0
    saved = json.loads((out / "finetune.json").read_text())
    assert saved["scores"] == json.loads(json.dumps(result.scores))
    assert saved["data"]["train"]["rows"] == 60
    card = (out / "README.md").read_text()
    for text in (saved["data"]["train"]["sha256"], "validation (model kept)", "test (--eval-data)"):
        assert text in card
    description = json.loads((out / "classifier.json").read_text())
    assert description["label_kind"] == "category" and description["pooling"] == "mean"
    assert description["base_encoder"]["name"] == "tiny-random"


def test_lora_output_is_a_plain_bert_with_merged_weights(lora_output):
    from transformers import AutoModel

    result, out = lora_output
    weights = _weights(out)
    assert not [k for k in weights if "lora" in k], "LoRA adapters were not merged"
    start = load_encoder("tiny-random").model.state_dict()
    query = "encoder.layer.0.attention.self.query.weight"
    assert not np.allclose(weights[query], start[query].numpy())
    assert np.allclose(
        weights["embeddings.word_embeddings.weight"], start["embeddings.word_embeddings.weight"]
    )
    AutoModel.from_pretrained(str(out), local_files_only=True)
    classifier = load_classifier(out)
    assert classifier.label_kind == "group" and len(classifier.labels) == 11
    assert result.scores["validation"]["n"] == 6


def test_early_stopping_keeps_the_best_epoch(tmp_path, train_csv):
    config = dataclasses.replace(
        TINY, epochs=5, head_epochs=1, early_stopping_patience=1, learning_rate=1e-9
    )
    result = finetune(train_csv, tmp_path / "out", config=config, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2]  # no better accuracy at epoch 2
    assert result.best_epoch == 1
    assert result.scores["validation"]["accuracy"] == result.history[0]["eval_accuracy"]


def test_an_easy_task_is_learned_well_above_chance(tmp_path, train_csv, test_csv):
    config = dataclasses.replace(TINY, head_epochs=40, epochs=3, head_learning_rate=5e-2)
    result = finetune(train_csv, tmp_path / "out", config=config, progress=False)
    assert result.scores["probe_validation"]["accuracy"] >= 0.8
    scores = evaluate_classifier(tmp_path / "out", test_csv)
    assert scores["accuracy"] >= 0.8, scores  # chance: 1/3


def test_a_foreign_folder_is_never_deleted(tmp_path, train_csv):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(
        FinetuneOutputExistsError,
        match=re.escape(f"Output folder {out} already exists and is not empty. Use --overwrite"),
    ):
        finetune(train_csv, out, config=PROBE_ONLY, progress=False)
    with pytest.raises(
        ForeignOutputError,
        match=re.escape(
            f"{out} was not written by rlagent finetune (it has no {MARKER}), so --overwrite "
            "deleted nothing; choose another --out, or empty it yourself."
        ),
    ):
        finetune(train_csv, out, config=PROBE_ONLY, overwrite=True, progress=False)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_overwrite_replaces_only_an_earlier_output(tmp_path, train_csv):
    out = tmp_path / "out"
    finetune(train_csv, out, config=PROBE_ONLY, progress=False)
    (out / "extra.txt").write_text("from the earlier run")
    with pytest.raises(FinetuneOutputExistsError):
        finetune(train_csv, out, config=PROBE_ONLY, progress=False)
    finetune(train_csv, out, config=PROBE_ONLY, overwrite=True, progress=False)
    assert {p.name for p in out.iterdir()} == FILES


def test_a_failed_run_removes_what_it_wrote(tmp_path, train_csv, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(run_module, "_linear_probe", fail)
    with pytest.raises(RuntimeError, match="boom"):
        finetune(train_csv, tmp_path / "new" / "out", config=PROBE_ONLY, progress=False)
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        finetune(train_csv, empty, config=PROBE_ONLY, progress=False)
    assert empty.is_dir() and not any(empty.iterdir())


def test_mistakes_fail_before_anything_is_written(tmp_path, train_csv, full_output):
    out = tmp_path / "out"
    config = dataclasses.replace(PROBE_ONLY, encoder="tiny-randon")
    with pytest.raises(EncoderNotFoundError, match=re.escape("did you mean 'tiny-random'?")):
        finetune(train_csv, out, config=config, progress=False)
    with pytest.raises(FileNotFoundError, match=re.escape("dataset file")):
        finetune(tmp_path / "missing.csv", out, config=PROBE_ONLY, progress=False)
    assert not out.exists()
    _, earlier = full_output
    config = dataclasses.replace(PROBE_ONLY, encoder=str(earlier))
    with pytest.raises(FinetuneConfigError, match=re.escape("is the encoder's own folder")):
        finetune(train_csv, earlier, config=config, overwrite=True, progress=False)
    assert load_classifier(earlier).labels  # untouched


def test_an_output_is_an_encoder_to_start_from(tmp_path, train_csv, full_output):
    _, earlier = full_output
    config = dataclasses.replace(PROBE_ONLY, encoder=str(earlier))
    result = finetune(train_csv, tmp_path / "again", config=config, progress=False)
    saved = json.loads((result.out / "classifier.json").read_text())
    assert saved["base_encoder"]["name"] == str(earlier)


def test_an_output_is_an_encoder_for_ppo(full_output):
    import rlagent

    _, out = full_output
    model = rlagent.make_ppo(
        "rlagent/CustomerService-v0",
        encoder=str(out),
        encoder_layers=[-1],  # the tiny model has 2 layers; the bundled config pools layer 3 too
        n_envs=1,
        seed=0,
        device="cpu",
        n_steps=16,
        batch_size=16,
        n_epochs=1,
    )
    model.learn(16)
    assert model.num_timesteps == 16
