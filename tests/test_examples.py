"""Every example script runs start to finish with a tiny budget."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "examples").glob("*.py"))


def test_every_example_is_listed():
    assert EXAMPLES, "examples/ is empty"


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_quick(script, tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    proc = subprocess.run(
        [sys.executable, str(script), "--quick"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


TRAINING = [p for p in EXAMPLES if "train(config" in p.read_text()]


def _run_example(script: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, str(script), "--quick", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.parametrize("script", TRAINING, ids=[p.stem for p in TRAINING])
def test_training_examples_never_delete_a_folder_they_did_not_write(script, tmp_path):
    assert {p.stem for p in TRAINING} >= {"train_customer_service", "train_recommender"}
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    data = tmp_path / "data"  # banking77.py checks that its CSVs exist before training
    data.mkdir()
    (data / "train.csv").write_text("text,category\n")
    (data / "test.csv").write_text("text,category\n")
    extra = ["--data", str(data)] if script.stem == "banking77" else []
    flags = [[], ["--overwrite"]] if script.stem == "train_customer_service" else [[]]
    for flag in flags:
        proc = _run_example(script, tmp_path, "--out", "notes/", *extra, *flag)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-4000:]
        error = proc.stderr.strip()
        assert error.startswith(f"{script.name}: error: ") and "\n" not in error, error
        if flag:
            assert "notes was not written by rlagent train" in error
            assert "--overwrite deleted nothing" in error
        else:
            assert "notes already exists and is not empty" in error
        assert [p.name for p in notes.iterdir()] == ["mine.txt"]
        assert (notes / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("name", ["finetune_encoder", "feedback_loop"])
def test_example_never_deletes_a_folder_it_did_not_write(name, tmp_path):
    script = REPO / "examples" / f"{name}.py"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "mine.txt").write_text("keep me")
    for flag in ([], ["--overwrite"]):
        proc = _run_example(script, tmp_path, "--out", "notes", *flag)
        assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-4000:]
        error = proc.stderr.strip().splitlines()[-1]
        assert error.startswith(f"{name}.py: error: "), proc.stderr[-2000:]
        if name == "finetune_encoder":
            assert ("deleted nothing" in error) == bool(flag), error
        else:
            assert "notes is not empty and holds no earlier loop" in error, error
        assert [p.name for p in notes.iterdir()] == ["mine.txt"]
