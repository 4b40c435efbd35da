"""FinetuneConfig checks every setting when it is built, with messages that say how to fix it."""

from __future__ import annotations

import re

import pytest

from rlagent.finetuning import FinetuneConfig, FinetuneConfigError


def test_defaults_are_the_documented_ones():
    config = FinetuneConfig()
    assert (config.encoder, config.mode, config.labels, config.pooling) == (
        "default",
        "full",
        "category",
        "mean",
    )
    assert (config.max_length, config.val_fraction, config.head_epochs) == (64, 0.1, 10)
    assert config.resolved_learning_rate == 5e-5
    assert FinetuneConfig(mode="lora").resolved_learning_rate == 5e-4
    assert FinetuneConfig(mode="lora", learning_rate=1e-3).resolved_learning_rate == 1e-3
    assert FinetuneConfig().to_dict()["lora_target_modules"] == ["query", "key", "value"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "adapter"}, "mode='adapter' is not one of 'full', 'lora'; pass one of those."),
        ({"labels": "intent"}, "labels='intent' is not one of 'category', 'group'"),
        ({"pooling": "max"}, "pooling='max' is not one of 'mean', 'cls'"),
        ({"device": "gpu"}, "device='gpu' is not one of 'auto', 'cpu', 'cuda'"),
        ({"epochs": -1}, "epochs=-1 must be an integer >= 0; pass e.g. epochs=1."),
        ({"batch_size": 0}, "batch_size=0 must be an integer >= 1"),
        ({"max_length": 1.5}, "max_length=1.5 must be an integer >= 2"),
        ({"learning_rate": 0}, "learning_rate=0 must be a number > 0, e.g. learning_rate=5e-5."),
        ({"val_fraction": 1.0}, "val_fraction=1.0 must be a number in [0, 1)."),
        ({"groups": 3}, "groups=3 must be a dict {category: group}, the path of a JSON file"),
        ({"lora_target_modules": "query"}, "lora_target_modules='query' must be a sequence"),
        (
            {"epochs": 0, "head_epochs": 0},
            "epochs=0 and head_epochs=0 train nothing; give the fine-tuning phase epochs",
        ),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(FinetuneConfigError, match=re.escape(message)):
        FinetuneConfig(**kwargs)


def test_a_config_is_frozen():
    with pytest.raises(AttributeError):
        FinetuneConfig().epochs = 5  # type: ignore[misc]
