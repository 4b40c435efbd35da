"""Smoke test of rlagent.benchmarks.mcts (numbers are measured by `rlagent bench mcts`)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from rlagent.benchmarks.mcts import format_mcts_bench, run_mcts_bench
from rlagent.planning import MCTSConfig


def test_quick_bench_without_openspiel():
    result = run_mcts_bench(quick=True, openspiel=False)
    json.dumps(result)
    assert set(result["speed"]) == {"rlagent", "rlagent_plain_uct"}
    assert all(v > 0 for v in result["speed"].values())
    rows = result["regret"]["rlagent"]
    assert [r["simulations"] for r in rows] == [50, 200]
    assert all(0.0 <= r["mean_relative_regret"] <= 1.0 for r in rows)
    assert "rlagent_plain_uct" in format_mcts_bench(result)
    assert result["regret_vs_openspiel"] == {}


@pytest.mark.skipif(importlib.util.find_spec("pyspiel") is None, reason="open_spiel not installed")
def test_quick_bench_with_openspiel():
    result = run_mcts_bench(quick=True)
    assert "openspiel" in result["speed"] and "rlagent" in result["speedup"]
    assert len(result["regret"]["openspiel"]) == 2
    paired = result["regret_vs_openspiel"]
    assert set(paired) == {"rlagent", "rlagent_plain_uct"}
    for name, rows in paired.items():
        for row, mine, theirs in zip(
            rows, result["regret"][name], result["regret"]["openspiel"], strict=True
        ):
            difference = mine["mean_relative_regret"] - theirs["mean_relative_regret"]
            assert row["mean_difference"] == pytest.approx(difference)
            assert row["stderr"] >= 0
    assert "paired by MDP" in format_mcts_bench(result)


def test_bench_measures_the_given_configurations():
    result = run_mcts_bench(
        quick=True, openspiel=False, rlagent_configs={"c05": MCTSConfig(uct_c=0.5)}
    )
    assert set(result["speed"]) == set(result["regret"]) == {"c05"}
    assert result["setup"]["rlagent_configs"]["c05"]["uct_c"] == 0.5
