"""Encoder dtypes: the names a frozen encoder can run in, and their checks.

``"fp32"`` and ``"bf16"`` run the torch encoder with float32 or bfloat16 weights; ``"int8"`` runs
a dynamically quantised copy (:mod:`rlagent.encoders.int8`); ``"auto"`` picks bf16 where the
hardware has native bfloat16 (a CPU with ``avx512_bf16``/AMX, CUDA) and fp32 elsewhere. The
older names ``"float32"`` and ``"bfloat16"`` of the ``dtype`` setting mean ``"fp32"`` and
``"bf16"``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ENCODER_DTYPES",
    "LEGACY_DTYPES",
    "EncoderDtypeError",
    "INT8_MODE_MESSAGE",
    "normalize_encoder_dtype",
]

#: Encoder dtypes (the ``encoder_dtype`` setting).
ENCODER_DTYPES: tuple[str, ...] = ("auto", "fp32", "bf16", "int8")
#: The older names of the ``dtype`` setting, and the encoder dtype each stands for.
LEGACY_DTYPES: dict[str, str] = {"auto": "auto", "float32": "fp32", "bfloat16": "bf16"}

#: Why int8 is frozen-mode only (said by the settings' and the extractor's errors).
INT8_MODE_MESSAGE = (
    "int8 is a quantised copy of the encoder made for inference (dynamic quantisation has no "
    "gradients), so it works only with encoder_mode 'frozen'; a lora or full encoder trains "
    "its weights, so use encoder_dtype 'fp32', 'bf16' or 'auto' with it"
)


class EncoderDtypeError(ValueError):
    """An encoder dtype that cannot be used: unknown, not for this mode, or refused by the gate.

    The acceptance gate (:func:`rlagent.agents.resolve_encoder_dtype`) raises it when an int8
    encoder does not agree with fp32 well enough; the message gives the figures.
    """


def normalize_encoder_dtype(value: Any, *, what: str = "encoder_dtype") -> str:
    """The encoder dtype ``value`` names: one of :data:`ENCODER_DTYPES`.

    Args:
        value: ``"auto"``, ``"fp32"``, ``"bf16"``, ``"int8"``, or an older name
            (``"float32"``, ``"bfloat16"``).
        what: The setting's name, for the message.

    Returns:
        The canonical name.

    Raises:
        EncoderDtypeError: For anything else.
    """
    if isinstance(value, str):
        if value in ENCODER_DTYPES:
            return value
        if value in LEGACY_DTYPES:
            return LEGACY_DTYPES[value]
    raise EncoderDtypeError(
        f"{what} = {value!r}; expected one of {', '.join(map(repr, ENCODER_DTYPES))} "
        "('float32' and 'bfloat16' are read as 'fp32' and 'bf16')"
    )
