"""``rlagent bench encoder``: PPO training frames per second for each way of reading text.

Variants, all on the same toy text task with the same PPO settings (4 envs, 32 steps per env per
rollout, minibatches of 64, 4 epochs), so one update per 128 frames in every variant:

* ``naive`` -- a trainable BERT extractor without cache, run at the full padded width in
  float32 (:class:`NaiveBertExtractor`): what a hand-written SB3 + BERT integration does.
* ``full`` -- rlagent's extractor with ``mode="full"`` (trainable, no cache, float32); it cuts
  the all-padding tail of each batch before BERT and keeps dropout off; otherwise as ``naive``.
* ``frozen_cache`` -- frozen encoder, segment-embedding cache, float32.
* ``frozen_cache_bf16`` -- the same in bfloat16 (only where the CPU or GPU supports it).
* ``bow`` -- a bag-of-words ``nn.EmbeddingBag`` extractor, no pretrained model.
* ``lora`` -- LoRA adapters on attention (needs peft), no cache.

Each figure is the median over ``repeats`` fresh agents of ``frames / wall time of learn()``
(building the agent is not timed); the slow variants (naive, full, lora) run ``slow_steps``
frames per repeat, the others ``steps``. Variants run round-robin, one agent each per round,
so a stall of a shared machine hits them alike; ``ratios`` divide the medians and
``paired_ratios`` are the medians of the per-round ratios. The toy task's cache hit rate is
reported, and those of the bundled envs when they are importable.
"""

from __future__ import annotations

import os
import platform
import statistics
import string
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

from rlagent.encoders.bow import BagOfWordsExtractor
from rlagent.encoders.extractor import cpu_supports_bf16, text_layout
from rlagent.encoders.loading import load_encoder

__all__ = [
    "NaiveBertExtractor",
    "ToyIntentEnv",
    "format_encoder_bench",
    "measure_cache_hit_rate",
    "run_encoder_bench",
]

_BENCH_PPO: dict[str, Any] = {"n_steps": 32, "batch_size": 64, "n_epochs": 4}
_BENCH_ENVS = 4
_BUNDLED_IDS: tuple[str, ...] = ("rlagent/CustomerService-v0", "rlagent/Recommendation-v0")
_CHARSET = string.ascii_letters + string.digits + string.punctuation + " "

_INTENTS: tuple[tuple[str, ...], ...] = (
    ("refund", "money back", "reimbursement"),
    ("lost card", "stolen card", "missing card"),
    ("card delivery", "new card arrival", "card in the post"),
    ("exchange rate", "currency conversion", "foreign fee"),
    ("top up", "add money", "load my account"),
    ("pin change", "reset my pin", "forgot my pin"),
    ("transfer failed", "payment declined", "transaction rejected"),
    ("close account", "delete my account", "end my membership"),
)
_TEMPLATES: tuple[str, ...] = (
    "Hi, I need help with {x}.",
    "Can you sort out my {x} please?",
    "I have a question about {x}.",
    "{x}, what do I do now?",
    "Hello there. It is about {x}, thanks.",
    "Please help: {x} again, this is urgent.",
)


class ToyIntentEnv(gym.Env):
    """A customer writes one message; the agent names its intent.

    Description:
        A small text-classification task posed as an RL problem, used by the encoder benchmark.
        8 intents x 3 phrasings x 6 templates = 144 distinct messages.

    Action Space:
        ``Discrete(8)``: the intent.

    Observation Space:
        ``Dict(message=Text(120))``; after the step, an empty message.

    Rewards:
        1.0 for the right intent, 0.0 otherwise.

    Episode End:
        After one step (terminated).

    Version History:
        * v0: initial version.
    """

    observation_space = spaces.Dict({"message": spaces.Text(120, min_length=0, charset=_CHARSET)})
    action_space = spaces.Discrete(len(_INTENTS))

    def __init__(self) -> None:
        self._intent = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Draw a message (intent, phrasing, template) from ``self.np_random``."""
        super().reset(seed=seed)
        self._intent = int(self.np_random.integers(len(_INTENTS)))
        phrase = _INTENTS[self._intent][int(self.np_random.integers(3))]
        template = _TEMPLATES[int(self.np_random.integers(len(_TEMPLATES)))]
        return {"message": template.format(x=phrase)}, {}

    def step(self, action: int) -> tuple[dict[str, str], float, bool, bool, dict[str, Any]]:
        """Reward 1.0 when ``action`` is the message's intent; the episode ends."""
        reward = float(int(action) == self._intent)
        return {"message": ""}, reward, True, False, {}


class NaiveBertExtractor(BaseFeaturesExtractor):
    """The baseline a hand-written SB3 + BERT integration amounts to (benchmark variant ``naive``).

    A trainable BERT runs forward (and backward, in updates) over every segment of every sample
    at the full padded width, in float32, with no cache and its dropout following the policy's
    training mode. Use :class:`rlagent.encoders.TextFeaturesExtractor` for real work.

    Args:
        observation_space: Token-id Dict made by :class:`rlagent.wrappers.TokenizeText`.
        encoder: Encoder name or folder.
    """

    def __init__(self, observation_space: spaces.Dict, *, encoder: str = "default") -> None:
        text, numeric = text_layout(observation_space)
        loaded = load_encoder(encoder)
        dim = sum(t.segments for t in text) * loaded.hidden_size + sum(n for _, n in numeric)
        super().__init__(observation_space, dim)
        self._text = text
        self._numeric = numeric
        self.bert = loaded.model

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean-pooled BERT features of every segment, then the numeric entries."""
        parts = []
        for entry in self._text:
            ids = observations[entry.ids_key].long().reshape(-1, entry.length)
            mask = observations[entry.mask_key].long().reshape(-1, entry.length)
            hidden = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
            weights = mask.unsqueeze(-1).float()
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
            parts.append(pooled.reshape(-1, entry.segments * pooled.shape[-1]))
        for key, size in self._numeric:
            parts.append(observations[key].reshape(-1, size).float())
        return torch.cat(parts, dim=1)


def _load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _summary(rates: list[float], steps: int) -> dict[str, Any]:
    return {
        "frames_per_s": statistics.median(rates),
        "runs": [round(r, 2) for r in rates],
        "frames_per_run": steps,
    }


def measure_cache_hit_rate(
    env_or_id: str | gym.Env | Callable[[], gym.Env],
    *,
    steps: int = 2048,
    encoder: str = "default",
    env_kwargs: dict[str, Any] | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """Train a frozen-encoder PPO for ``steps`` frames and report its embedding cache counters.

    Args:
        env_or_id: Env id, env, or env factory with text observations.
        steps: Frames of training.
        encoder: Encoder name or folder.
        env_kwargs: Env keyword arguments (with an id or a factory).
        device: Torch device.
        seed: Seed of the agent and envs.

    Returns:
        ``hits``, ``misses``, ``size``, ``hit_rate`` and ``frames``.
    """
    from rlagent.agents import AgentConfig, make_ppo

    model = make_ppo(
        env_or_id,
        config=AgentConfig(),  # the generic agent, also on a bundled env
        encoder=encoder,
        n_envs=_BENCH_ENVS,
        device=device,
        seed=seed,
        env_kwargs=env_kwargs,
        **_BENCH_PPO,
    )
    model.learn(steps)
    info = model.policy.features_extractor.cache_info()
    return {
        "hits": info.hits,
        "misses": info.misses,
        "size": info.size,
        "hit_rate": info.hit_rate,
        "frames": steps,
    }


def run_encoder_bench(
    *,
    device: str = "cpu",
    repeats: int = 3,
    steps: int = 2048,
    slow_steps: int = 128,
    encoder: str = "default",
    include_bundled_env: bool = True,
    num_threads: int | None = None,
    quick: bool = False,
) -> dict[str, Any]:
    """Measure PPO training frames/s for the five ways of reading text (see module docstring).

    Args:
        device: ``"cpu"``, ``"cuda"`` or ``"auto"``.
        repeats: Fresh agents per variant; the median is reported.
        steps: Frames per repeat for the fast variants (frozen, bf16, bag-of-words).
        slow_steps: Frames per repeat for the trainable-encoder variants (naive, full, lora);
            keep it a multiple of 128 (one rollout and update).
        encoder: Encoder name or folder.
        include_bundled_env: Also measure the cache hit rate on the bundled envs
            (``rlagent/CustomerService-v0``, ``rlagent/Recommendation-v0``).
        num_threads: Torch intra-op threads during the run (restored after); ``None`` keeps
            the current setting.
        quick: Smoke-test budgets: one round of 128 frames per variant, bundled envs skipped.

    Returns:
        A JSON-ready dict: ``variants`` (frames_per_s, runs, frames_per_run, or ``skipped``),
        ``ratios`` (against naive and against bag-of-words), ``targets``, ``cache_hit_rate``,
        and the machine and settings.
    """
    if quick:
        repeats, steps, slow_steps, include_bundled_env = 1, 128, 128, False
    threads_before = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    try:
        return _run(device, repeats, steps, slow_steps, encoder, include_bundled_env)
    finally:
        torch.set_num_threads(threads_before)


def _run(
    device: str,
    repeats: int,
    steps: int,
    slow_steps: int,
    encoder: str,
    include_bundled_env: bool,
) -> dict[str, Any]:
    from rlagent.agents import make_ppo, make_vec_env, resolve_device

    torch_device = resolve_device(device)
    load_start = _load_average()

    def text_agent(mode: str, dtype: str, cache_size: int) -> Callable[[int], Any]:
        def build(seed: int) -> Any:
            return make_ppo(
                ToyIntentEnv,
                encoder=encoder,
                encoder_mode=mode,
                n_envs=_BENCH_ENVS,
                device=torch_device,
                seed=seed,
                dtype=dtype,
                policy_kwargs={"features_extractor_kwargs": {"cache_size": cache_size}},
                **_BENCH_PPO,
            )

        return build

    def plain_agent(extractor: type, extractor_kwargs: dict[str, Any]) -> Callable[[int], Any]:
        def build(seed: int) -> Any:
            from stable_baselines3 import PPO

            vec = make_vec_env(ToyIntentEnv, n_envs=_BENCH_ENVS, seed=seed, encoder=encoder)
            return PPO(
                "MultiInputPolicy",
                vec,
                device=torch_device,
                seed=seed,
                verbose=0,
                policy_kwargs={
                    "features_extractor_class": extractor,
                    "features_extractor_kwargs": extractor_kwargs,
                    "net_arch": {"pi": [128, 64], "vf": [128, 64]},
                    # A hand-written integration must turn this off, or BERT is re-initialised.
                    "ortho_init": extractor is BagOfWordsExtractor,
                },
                **_BENCH_PPO,
            )

        return build

    bf16_ok = (
        torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        if torch_device.type == "cuda"
        else cpu_supports_bf16()
    )
    builders: dict[str, tuple[Callable[[int], Any], int]] = {
        "naive": (plain_agent(NaiveBertExtractor, {"encoder": encoder}), slow_steps),
        "full": (text_agent("full", "float32", 0), slow_steps),
        "frozen_cache": (text_agent("frozen", "float32", 100_000), steps),
    }
    skipped: dict[str, str] = {}
    if bf16_ok:
        builders["frozen_cache_bf16"] = (text_agent("frozen", "bfloat16", 100_000), steps)
    else:
        skipped["frozen_cache_bf16"] = "no native bfloat16 on this device"
    builders["bow"] = (plain_agent(BagOfWordsExtractor, {}), steps)
    try:
        import peft  # noqa: F401
    except ImportError:
        skipped["lora"] = "peft not installed (pip install rlagent[lora])"
    else:
        builders["lora"] = (text_agent("lora", "float32", 0), slow_steps)

    # Round-robin over variants, so that a stall of the machine hits every variant alike; the
    # paired ratios compare variants within one round.
    rates: dict[str, list[float]] = {name: [] for name in builders}
    toy_cache = None
    for r in range(repeats):
        for name, (build, frames) in builders.items():
            model = build(r)
            start = time.perf_counter()
            model.learn(frames)
            rates[name].append(frames / (time.perf_counter() - start))
            if name == "frozen_cache":
                toy_cache = model.policy.features_extractor.cache_info()
            del model

    variants: dict[str, dict[str, Any]] = {}
    for name in ("naive", "full", "frozen_cache", "frozen_cache_bf16", "bow", "lora"):
        if name in skipped:
            variants[name] = {"skipped": skipped[name]}
        else:
            variants[name] = _summary(rates[name], builders[name][1])

    ratios: dict[str, float] = {}
    paired: dict[str, float] = {}
    for name in builders:
        for ref in ("naive", "bow"):
            if name == ref:
                continue
            key = f"{name}_vs_{ref}"
            ratios[key] = variants[name]["frames_per_s"] / variants[ref]["frames_per_s"]
            paired[key] = statistics.median(
                a / b for a, b in zip(rates[name], rates[ref], strict=True)
            )

    hit_rates: dict[str, Any] = {
        "ToyIntentEnv": {
            "hit_rate": toy_cache.hit_rate,
            "hits": toy_cache.hits,
            "misses": toy_cache.misses,
            "size": toy_cache.size,
            "frames": steps,
        }
    }
    if include_bundled_env:
        for env_id in _BUNDLED_IDS:
            try:
                import envs  # noqa: F401  (registers the bundled ids)

                hit_rates[env_id] = measure_cache_hit_rate(
                    env_id, steps=steps, encoder=encoder, device=str(torch_device)
                )
            except Exception as err:  # noqa: BLE001  (report, do not abort the benchmark)
                hit_rates[env_id] = {"skipped": f"{type(err).__name__}: {err}"}

    return {
        "benchmark": "encoder",
        "encoder": encoder,
        "device": str(torch_device),
        "repeats": repeats,
        "ppo": {"n_envs": _BENCH_ENVS, **_BENCH_PPO},
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "processor": platform.processor() or platform.machine(),
            "cpu_bf16": cpu_supports_bf16(),
            "load_average_1min": {"start": load_start, "end": _load_average()},
            "cuda": torch.cuda.get_device_name(0) if torch_device.type == "cuda" else None,
            "torch": torch.__version__,
        },
        "variants": variants,
        "ratios": ratios,
        "paired_ratios": paired,
        "targets": {
            "frozen_cache_vs_naive>=100": ratios.get("frozen_cache_vs_naive", 0.0) >= 100.0,
            "frozen_cache_vs_bow>=1.0": ratios.get("frozen_cache_vs_bow", 0.0) >= 1.0,
        },
        "cache_hit_rate": hit_rates,
    }


def format_encoder_bench(result: dict[str, Any]) -> str:
    """A Markdown table of a :func:`run_encoder_bench` result."""
    lines = [
        "| variant | frames/s (median) | runs | vs naive | vs bag-of-words |",
        "|---|---:|---|---:|---:|",
    ]
    ratios = result["ratios"]
    for name, row in result["variants"].items():
        if "skipped" in row:
            lines.append(f"| {name} | skipped: {row['skipped']} | | | |")
            continue
        vs_naive = "1.00" if name == "naive" else f"{ratios[f'{name}_vs_naive']:.2f}"
        vs_bow = "1.00" if name == "bow" else f"{ratios[f'{name}_vs_bow']:.2f}"
        runs = ", ".join(f"{r:.1f}" for r in row["runs"])
        lines.append(f"| {name} | {row['frames_per_s']:.1f} | {runs} | {vs_naive} | {vs_bow} |")
    return "\n".join(lines) + "\n"
