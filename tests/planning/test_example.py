"""Smoke test of examples/mcts_planning.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_mcts_planning_example_runs():
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "mcts_planning.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Gamble: action 1" in done.stdout
    assert "oracle (sees hidden state)" in done.stdout
