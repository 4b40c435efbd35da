"""The RecSim side-by-side benchmark (skipped unless recsim-no-tf is installed)."""

from __future__ import annotations

import re
import sys

import pytest

from rlagent.benchmarks.recsim import compare_with_recsim, make_recsim_env


def test_missing_recsim_gives_an_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "recsim.environments", None)
    with pytest.raises(ImportError, match=re.escape("pip install rlagent[recsim]")):
        make_recsim_env()


def test_side_by_side_runs_on_the_same_settings():
    pytest.importorskip("recsim.environments", reason="recsim-no-tf is not installed")
    result = compare_with_recsim(n_candidates=5, slate_size=2, steps=300, repeats=1, episodes=5)
    assert result["settings"]["n_candidates"] == 5
    for side in ("rlagent", "recsim"):
        assert result[side]["steps_per_s"] > 0
        for policy in ("random", "best_topic"):
            row = result[side][policy]
            assert row["episodes"] == 5 and row["mean_return"] > 0
    assert result["speedup"] > 0
