"""A tiny random BERT and its tokenizer, built offline in code (for fast tests).

``"tiny-random"`` is a 2-layer BERT with hidden size 32, 2 attention heads, random weights from
a fixed seed, and a WordPiece tokenizer whose vocabulary (special tokens, characters, ``##``
continuation characters and a few hundred common English words) is defined below. Nothing is
read from disk or the network, so it is identical on every machine with the same torch and
transformers versions. It carries no meaning; use it to test plumbing, never to judge learning
on real language.
"""

from __future__ import annotations

import hashlib
import string
from functools import lru_cache
from typing import Any

import torch
from torch import nn

__all__ = [
    "TINY_RANDOM",
    "build_tiny_bert",
    "build_tiny_tokenizer",
    "state_dict_checksum",
    "tiny_random_checksum",
]

#: The name under which :func:`rlagent.encoders.load_encoder` builds the tiny random BERT.
TINY_RANDOM: str = "tiny-random"

_SEED = 20240607
_HIDDEN = 32
_LAYERS = 2
_HEADS = 2
_INTERMEDIATE = 64
_MAX_POSITIONS = 512
_SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_WORDS = """
a about account address after again all am an and any are as ask at back bank be because been
before being bill book books both but buy by call can cancel card cards cash change charge
charged check close code come contact could credit customer day debit delivery did do does
done down each email error exchange fee fees find first for from get give go good got had has
have he help her here him his how i if in is it its just know last late like live login long
look lost make many may me money more most movie my need new no not now number of off on one
only open or order other our out over paid password pay payment phone please problem product
read received refund reset return right said same see send sent service she should show so
some still story take than thank thanks that the their them then there these they thing this
time to today top transfer try two up us use used very wait want was way we week well went
were what when where which who why will with without work would wrong yes yet you your
""".split()


def _vocabulary() -> dict[str, int]:
    tokens: list[str] = list(_SPECIAL)
    chars = string.ascii_lowercase + string.digits + string.punctuation
    tokens += list(chars)
    tokens += [f"##{c}" for c in chars]
    tokens += [w for w in _WORDS if w not in tokens]
    return {tok: i for i, tok in enumerate(tokens)}


@lru_cache(maxsize=1)
def build_tiny_tokenizer() -> Any:
    """The tiny-random WordPiece tokenizer (lower-casing, BERT pre-tokenisation, [CLS]/[SEP]).

    Returns:
        A ``transformers.PreTrainedTokenizerFast``; id 0 is ``[PAD]``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = _vocabulary()
    backend = Tokenizer(
        models.WordPiece(vocab=vocab, unk_token="[UNK]", max_input_chars_per_word=100)
    )
    backend.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=_MAX_POSITIONS,
    )


def build_tiny_bert() -> nn.Module:
    """A freshly built tiny random ``BertModel`` (same weights on every call; global RNG untouched).

    Returns:
        The model, in eval mode, float32, on the CPU.
    """
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=len(_vocabulary()),
        hidden_size=_HIDDEN,
        num_hidden_layers=_LAYERS,
        num_attention_heads=_HEADS,
        intermediate_size=_INTERMEDIATE,
        max_position_embeddings=_MAX_POSITIONS,
        pad_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        model = BertModel(config, add_pooling_layer=False)
    return model.eval()


@lru_cache(maxsize=1)
def tiny_random_checksum() -> str:
    """sha256 of the tiny random BERT's state dict (keys and float32 values, in key order)."""
    return state_dict_checksum(build_tiny_bert())


def state_dict_checksum(model: nn.Module) -> str:
    """sha256 hex digest of a module's state dict (keys and float32 values, in key order).

    Args:
        model: Any module.

    Returns:
        The digest.
    """
    digest = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()
