"""The output folder of ``rlagent finetune``: what it holds, and when it may be replaced.

The folder is a standard Hugging Face model folder (``config.json``, ``model.safetensors``,
tokenizer files), so ``--encoder DIR``, :func:`rlagent.encoders.load_encoder` and
``AutoModel.from_pretrained(DIR)`` read it, plus:

* ``classifier.safetensors`` -- the head's ``weight`` ``[L, H]`` and ``bias`` ``[L]``;
* ``classifier.json`` -- label names and kind, pooling, max_length, the group mapping, the
  encoder it started from;
* ``finetune.json`` -- settings, data, scores, wall time and device, for programs;
* ``README.md`` -- the model card, for people;
* ``.rlagent-finetune.json`` -- the marker: ``overwrite=True`` (``--overwrite``) only ever
  empties a folder that holds it. Any other non-empty folder is refused and left as it is.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from rlagent._folders import empty_folder, has_marker, outermost_missing, write_marker_file
from rlagent.finetuning.errors import FinetuneOutputExistsError, ForeignOutputError

__all__ = [
    "CLASSIFIER_CONFIG",
    "CLASSIFIER_WEIGHTS",
    "MARKER",
    "RESULTS",
    "SCRATCH",
    "discard_failed_output",
    "is_finetune_output",
    "prepare_output",
    "write_classifier",
    "write_json",
]

#: The file that marks a folder as written by ``rlagent finetune``.
MARKER = ".rlagent-finetune.json"
#: The head's weights.
CLASSIFIER_WEIGHTS = "classifier.safetensors"
#: The head's description (labels, pooling, max_length, groups).
CLASSIFIER_CONFIG = "classifier.json"
#: Settings, data and scores of the run.
RESULTS = "finetune.json"
#: The Trainer's checkpoints during the run; removed at the end.
SCRATCH = ".trainer-checkpoints"


def is_finetune_output(path: str | Path) -> bool:
    """Whether ``path`` holds the marker that ``rlagent finetune`` leaves in its output."""
    return has_marker(path, MARKER)


def prepare_output(out: Path, *, overwrite: bool) -> Path | None:
    """Make ``out`` ready for a new fine-tuning output and mark it.

    Args:
        out: The output folder.
        overwrite: Empty an earlier fine-tuning output there first (only a folder with the
            marker).

    Returns:
        The outermost folder this call created (``out`` or a parent), or ``None`` when
        ``out`` existed; :func:`discard_failed_output` removes it.

    Raises:
        FinetuneOutputExistsError: ``out`` is a file, or a non-empty folder without
            ``overwrite``.
        ForeignOutputError: ``overwrite`` is set but ``out`` is not a fine-tuning output.
    """
    if out.exists() and not out.is_dir():
        raise FinetuneOutputExistsError(
            f"{out} exists and is not a folder; choose another --out (out=)."
        )
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise FinetuneOutputExistsError(
                f"Output folder {out} already exists and is not empty. Use --overwrite "
                "(overwrite=True) to replace an earlier rlagent finetune output there, or "
                "choose another --out."
            )
        if not is_finetune_output(out):
            raise ForeignOutputError(
                f"{out} was not written by rlagent finetune (it has no {MARKER}), so "
                "--overwrite deleted nothing; choose another --out, or empty it yourself."
            )
        empty_folder(out)
    created = outermost_missing(out)
    out.mkdir(parents=True, exist_ok=True)
    write_marker_file(out, MARKER)
    return created


def discard_failed_output(out: Path, created: Path | None) -> None:
    """Remove what a failed run wrote: the folder it created, or the contents of ``out``.

    Args:
        out: The output folder.
        created: What :func:`prepare_output` returned.
    """
    if not is_finetune_output(out):
        return
    if created is not None:
        shutil.rmtree(created, ignore_errors=True)
    else:
        empty_folder(out)


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON (UTF-8, trailing newline)."""
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def write_classifier(out: Path, head: torch.nn.Linear, description: dict[str, Any]) -> None:
    """Write the head's weights and its description into ``out``.

    Args:
        out: The output folder.
        head: The linear layer ``[L, H]``.
        description: What ``classifier.json`` holds (labels, label kind, pooling, ...).
    """
    from safetensors.torch import save_file

    tensors = {
        "weight": head.weight.detach().to("cpu", torch.float32).contiguous(),
        "bias": head.bias.detach().to("cpu", torch.float32).contiguous(),
    }
    save_file(tensors, str(out / CLASSIFIER_WEIGHTS), metadata={"format": "pt"})
    write_json(out / CLASSIFIER_CONFIG, description)
