"""Smoke test of rlagent.benchmarks.mcts (numbers are measured by `rlagent bench mcts`)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from rlagent.benchmarks.mcts import format_mcts_bench, run_mcts_bench


def test_quick_bench_without_openspiel():
    result = run_mcts_bench(quick=True, openspiel=False)
    json.dumps(result)
    assert set(result["speed"]) == {"rlagent", "rlagent_plain_uct"}
    assert all(v > 0 for v in result["speed"].values())
    rows = result["regret"]["rlagent"]
    assert [r["simulations"] for r in rows] == [50, 200]
    assert all(0.0 <= r["mean_relative_regret"] <= 1.0 for r in rows)
    assert "rlagent_plain_uct" in format_mcts_bench(result)


@pytest.mark.skipif(importlib.util.find_spec("pyspiel") is None, reason="open_spiel not installed")
def test_quick_bench_with_openspiel():
    result = run_mcts_bench(quick=True)
    assert "openspiel" in result["speed"] and "rlagent" in result["speedup"]
    assert len(result["regret"]["openspiel"]) == 2
