"""``rlagent bench encoder --dtypes fp32 bf16 int8``: texts per second of each encoder dtype.

Each variant is a frozen :class:`rlagent.encoders.TextFeaturesExtractor` without cache, so
every call runs the encoder: token ids in, pooled embeddings out (tokenizing is not timed; it
is the same for every dtype). The texts are the distinct utterances of seeded
customer-service episodes on the test split (the toy intent messages when the bundled envs
are missing), encoded in order in batches of each size. Variants and batch sizes run
round-robin, ``repeats`` rounds, so a stall of a shared machine hits them alike; the figure
is the median over rounds, ``ratios`` divide medians by fp32's and ``paired_ratios`` are
medians of the per-round ratios.

Variants: ``fp32``, ``bf16``, ``int8`` (the default scheme, what ``encoder_dtype="int8"``
runs), and two diagnostics: ``int8-all`` (every linear layer quantised, a scheme the
acceptance gate refuses for MiniLM) and ``onnx-fp32`` (the float32 ONNX graph in ONNX
Runtime, to tell the runtime's share of int8's speed from quantisation's).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from gymnasium import spaces

from rlagent.encoders.extractor import TextFeaturesExtractor, cpu_supports_bf16
from rlagent.encoders.int8 import Int8Scheme, build_int8_encoder, onnxruntime_available
from rlagent.encoders.loading import load_encoder, load_tokenizer

__all__ = ["DTYPE_VARIANTS", "format_dtype_bench", "run_dtype_bench", "bench_texts"]

#: Variants the dtype bench knows.
DTYPE_VARIANTS: tuple[str, ...] = ("fp32", "bf16", "int8", "int8-all", "onnx-fp32")
_SCHEMES = {"int8-all": Int8Scheme(modules="all"), "onnx-fp32": Int8Scheme(modules="none")}


def bench_texts(n: int = 256, *, seed: int = 0) -> list[str]:
    """Up to ``n`` distinct texts an agent reads: customer-service test-split utterances.

    Collected from seeded episodes of ``rlagent/CustomerService-v0`` (``split="test"``)
    with random replies; the toy intent messages of ``rlagent bench encoder`` when the bundled
    envs cannot be imported.
    """
    try:
        from rlagent.env_making import make_env

        env = make_env("rlagent/CustomerService-v0", {"split": "test"})
    except Exception:  # noqa: BLE001  (a stripped install: use the toy messages)
        from rlagent.benchmarks.encoder import _INTENTS, _TEMPLATES

        texts = [t.format(x=p) for group in _INTENTS for p in group for t in _TEMPLATES]
        return texts[:n]
    rng = np.random.default_rng(seed)
    seen: dict[str, None] = {}
    episode = 0
    while len(seen) < n and episode < 50 * n:
        obs, _ = env.reset(seed=seed + episode)
        episode += 1
        done = False
        while not done:
            for key in ("dialogue", "request"):
                value = obs.get(key) if isinstance(obs, dict) else None
                for text in (value,) if isinstance(value, str) else value or ():
                    if text:
                        seen.setdefault(text, None)
            action = int(rng.integers(env.action_space.n))
            obs, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
    return list(seen)[:n]


def _extractor(encoder: str, variant: str, max_length: int) -> TextFeaturesExtractor:
    space = spaces.Dict(
        {
            "text_input_ids": spaces.Box(0, 1 << 30, (1, max_length), np.int64),
            "text_attention_mask": spaces.Box(0, 1, (1, max_length), np.int64),
        }
    )
    dtype = "int8" if variant in _SCHEMES else variant
    extractor = TextFeaturesExtractor(space, encoder=encoder, dtype=dtype, cache_size=0)
    if variant in _SCHEMES:
        loaded = load_encoder(encoder)
        extractor.__dict__["_int8"] = build_int8_encoder(loaded, scheme=_SCHEMES[variant])
    return extractor


def run_dtype_bench(
    *,
    encoder: str = "default",
    dtypes: Sequence[str] = ("fp32", "bf16", "int8"),
    batch_sizes: Sequence[int] = (1, 32),
    repeats: int = 5,
    texts: int = 128,
    max_length: int = 64,
    num_threads: int | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Measure texts/s of each encoder dtype at each batch size (see module docstring).

    Args:
        encoder: Encoder name or folder.
        dtypes: Variants from :data:`DTYPE_VARIANTS`; ``fp32`` is added when missing (the
            ratios' reference).
        batch_sizes: Texts per encoder call.
        repeats: Rounds; the median is reported.
        texts: Texts encoded per variant, batch size and round.
        max_length: Tokens per text (longer ones are cut).
        num_threads: Torch and ONNX Runtime intra-op threads during the run (restored
            after); ``None`` keeps torch's current setting.
        quick: Smoke-test budgets: one round of 8 texts.

    Returns:
        A JSON-ready dict: ``variants`` (per batch size: texts_per_s, runs), ``ratios`` and
        ``paired_ratios`` against fp32 (``"<variant>@<batch>"`` keys), ``skipped``, the
        machine and settings.

    Raises:
        ValueError: An unknown variant or a batch size below 1.
    """
    unknown = [d for d in dtypes if d not in DTYPE_VARIANTS]
    if unknown:
        raise ValueError(
            f"Unknown encoder dtype variant(s) {unknown}; expected some of {list(DTYPE_VARIANTS)}."
        )
    if any(int(b) < 1 for b in batch_sizes):
        raise ValueError(f"batch sizes must be >= 1, got {list(batch_sizes)}.")
    if quick:
        repeats, texts = 1, 8
    variants = list(dict.fromkeys(["fp32", *dtypes]))
    threads_before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _run(encoder, variants, [int(b) for b in batch_sizes], repeats, texts, max_length)
    finally:
        torch.set_num_threads(threads_before)


def _run(
    encoder: str,
    variants: list[str],
    batch_sizes: list[int],
    repeats: int,
    n_texts: int,
    max_length: int,
) -> dict[str, Any]:
    corpus = bench_texts(n_texts)
    tokens = load_tokenizer(encoder)(
        corpus, padding="max_length", truncation=True, max_length=max_length, return_tensors="pt"
    )
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    skipped: dict[str, str] = {}
    extractors: dict[str, TextFeaturesExtractor] = {}
    for variant in variants:
        if variant in _SCHEMES and not onnxruntime_available():
            skipped[variant] = "needs onnxruntime (pip install rlagent[int8])"
            continue
        extractors[variant] = _extractor(encoder, variant, max_length)
    rates: dict[str, list[float]] = {f"{v}@{b}": [] for v in extractors for b in batch_sizes}
    for extractor in extractors.values():
        for size in batch_sizes:  # warm-up: first calls allocate
            extractor.encode_segments(ids[:size], mask[:size])
    for _ in range(repeats):
        for variant, extractor in extractors.items():
            for size in batch_sizes:
                start = time.perf_counter()
                with torch.no_grad():
                    for first in range(0, len(corpus), size):
                        extractor.encode_segments(
                            ids[first : first + size], mask[first : first + size]
                        )
                rates[f"{variant}@{size}"].append(len(corpus) / (time.perf_counter() - start))
    results: dict[str, dict[str, Any]] = {}
    for variant in variants:
        if variant in skipped:
            results[variant] = {"skipped": skipped[variant]}
            continue
        results[variant] = {
            str(size): {
                "texts_per_s": statistics.median(rates[f"{variant}@{size}"]),
                "runs": [round(r, 1) for r in rates[f"{variant}@{size}"]],
            }
            for size in batch_sizes
        }
    ratios: dict[str, float] = {}
    paired: dict[str, float] = {}
    for variant in extractors:
        for size in batch_sizes:
            key, ref = f"{variant}@{size}", f"fp32@{size}"
            ratios[key] = statistics.median(rates[key]) / statistics.median(rates[ref])
            paired[key] = statistics.median(
                a / b for a, b in zip(rates[key], rates[ref], strict=True)
            )
    int8 = extractors.get("int8")
    return {
        "benchmark": "encoder_dtypes",
        "encoder": encoder,
        "texts": len(corpus),
        "mean_tokens": float(mask.sum(dim=1).float().mean()),
        "batch_sizes": batch_sizes,
        "repeats": repeats,
        "int8_backend": None if int8 is None else int8.int8_encoder.backend,
        "machine": _machine(),
        "variants": results,
        "ratios": ratios,
        "paired_ratios": paired,
    }


def _cpu_model_and_flags() -> tuple[str, set[str]]:
    name, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name") and ":" in line:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and ":" in line:
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    return name, flags


def _machine() -> dict[str, Any]:
    model, flags = _cpu_model_and_flags()
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "avx512_vnni": "avx512_vnni" in flags,
        "avx_vnni": "avx_vnni" in flags,
        "cpu_bf16": cpu_supports_bf16(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }


def format_dtype_bench(result: dict[str, Any]) -> str:
    """A Markdown table of a :func:`run_dtype_bench` result."""
    sizes = result["batch_sizes"]
    head = " | ".join(f"batch {b}: texts/s | vs fp32" for b in sizes)
    lines = [f"| variant | {head} |", "|---|" + "---:|---:|" * len(sizes)]
    for name, row in result["variants"].items():
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} |" + " |" * (2 * len(sizes) - 1))
            continue
        cells = []
        for size in sizes:
            cells.append(f"{row[str(size)]['texts_per_s']:.1f}")
            cells.append(f"{result['ratios'][f'{name}@{size}']:.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    machine = result["machine"]
    lines.append("")
    lines.append(
        f"{result['texts']} texts ({result['mean_tokens']:.1f} tokens on average), median of "
        f"{result['repeats']} rounds; {machine['cpu']}, {machine['torch_threads']} torch "
        f"thread(s), torch {machine['torch']}, onnxruntime {machine['onnxruntime']}, int8 "
        f"backend {result['int8_backend']}."
    )
    return "\n".join(lines) + "\n"
