from __future__ import annotations

import json

from rlagent.benchmarks.encoder import ToyIntentEnv, format_encoder_bench, run_encoder_bench


def test_toy_env_rewards_the_right_intent():
    env = ToyIntentEnv()
    obs, _ = env.reset(seed=0)
    assert obs["message"] in env.observation_space["message"]
    intent = env._intent
    _, reward, terminated, truncated, _ = env.step(intent)
    assert (reward, terminated, truncated) == (1.0, True, False)


def test_bench_reports_every_variant_and_ratio_quickly():
    result = run_encoder_bench(
        encoder="tiny-random", repeats=1, steps=128, slow_steps=128, include_bundled_env=False
    )
    json.dumps(result)
    assert set(result["variants"]) == {
        "naive",
        "full",
        "frozen_cache",
        "frozen_cache_bf16",
        "bow",
        "lora",
    }
    assert result["variants"]["frozen_cache"]["frames_per_s"] > 0
    assert "frozen_cache_vs_naive" in result["ratios"]
    assert "frozen_cache_vs_bow" in result["ratios"]
    assert 0.0 < result["cache_hit_rate"]["ToyIntentEnv"]["hit_rate"] <= 1.0
    table = format_encoder_bench(result)
    assert table.count("\n") == 2 + len(result["variants"])
