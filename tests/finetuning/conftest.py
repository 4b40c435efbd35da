"""Tiny labelled CSVs and fine-tuned outputs shared by the fine-tuning tests (tiny random BERT)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from rlagent.finetuning import FinetuneConfig, finetune

#: Trivially separable: each category has its own keywords (all in the tiny tokenizer's words).
WORDS = {
    "lost_or_stolen_card": ["lost", "card", "cards", "find"],
    "request_refund": ["refund", "money", "back", "return"],
    "change_pin": ["code", "reset", "number", "change"],
}
FILLERS = ["i", "my", "please", "the", "now", "today", "help", "need", "want", "can"]


def rows(per_category: int, offset: int = 0) -> list[tuple[str, str]]:
    """``per_category`` distinct utterances per category, from its keywords and fillers."""
    out = []
    for category, words in WORDS.items():
        for i in range(offset, offset + per_category):
            text = " ".join(
                [FILLERS[i % 10], words[i % 4], FILLERS[(3 * i + 1) % 10], words[(i + 1) % 4]]
                + [FILLERS[(i // 10 + 5) % 10]] * (i // 10 % 2)
            )
            out.append((text, category))
    return out


def write_csv(path: Path, data: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "category"])
        writer.writerows(data)
    return path


#: Fast settings: the tiny random BERT, a few epochs, small batches.
TINY = FinetuneConfig(
    encoder="tiny-random",
    epochs=2,
    head_epochs=2,
    batch_size=8,
    max_length=16,
    head_learning_rate=3e-2,
    learning_rate=1e-3,
    device="cpu",
)


@pytest.fixture(scope="session")
def train_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "train.csv", rows(20))


@pytest.fixture(scope="session")
def test_csv(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("data") / "test.csv", rows(8, offset=20))


@pytest.fixture(scope="session")
def full_output(tmp_path_factory, train_csv, test_csv):
    """A full fine-tuning output of the tiny model: ``(result, folder)``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("full") / "out"
        result = finetune(train_csv, out, config=TINY, eval_data=test_csv, progress=False)
    finally:
        torch.set_num_threads(threads)
    return result, out


@pytest.fixture(scope="session")
def lora_output(tmp_path_factory, train_csv):
    """A LoRA fine-tuning output of the tiny model, labelled by group: ``(result, folder)``."""
    pytest.importorskip("peft")
    import dataclasses

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("lora") / "out"
        config = dataclasses.replace(TINY, mode="lora", labels="group", epochs=1)
        result = finetune(train_csv, out, config=config, progress=False)
    finally:
        torch.set_num_threads(threads)
    return result, out
