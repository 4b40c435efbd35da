"""rlagent finetune: one JSON object with --json, and one-line errors for every mistake."""

from __future__ import annotations

import json
import sys

import pytest

from rlagent.cli import main

TINY_FLAGS = ["--encoder", "tiny-random", "--max-length", "16", "--batch-size", "8"]


def one_line_error(capsys) -> str:
    """The single stderr line of a failed command, without its prefix."""
    err = capsys.readouterr().err
    prefix = "rlagent finetune: error: "
    assert err.startswith(prefix) and err.count("\n") == 1 and "Traceback" not in err, err
    return err[len(prefix) : -1]


def test_finetune_then_evaluate_print_one_json_object_each(tmp_path, capsys, train_csv, test_csv):
    out = tmp_path / "out"
    argv = ["finetune", "--data", str(train_csv), "--out", str(out), *TINY_FLAGS]
    assert main([*argv, "--epochs", "1", "--head-epochs", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["out"] == str(out) and result["scores"]["validation"]["n"] == 6
    assert main(["finetune", "--evaluate", str(out), "--data", str(test_csv), "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {"accuracy", "macro_f1", "n", "group_accuracy"}
    assert scores["n"] == 24
    assert all(0 <= scores[k] <= 1 for k in ("accuracy", "macro_f1", "group_accuracy"))


def test_the_summary_says_how_to_use_the_folder(tmp_path, capsys, train_csv):
    out = tmp_path / "out"
    argv = ["finetune", "--data", str(train_csv), "--out", str(out), *TINY_FLAGS]
    assert main([*argv, "--epochs", "0", "--head-epochs", "1", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "validation: accuracy " in printed and f"--encoder {out}" in printed


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "dataset file '{tmp}/missing.csv' does not exist; pass the path of a CSV"),
        ("bad_csv", "{tmp}/bad.csv, line 2: found 3 field(s), expected 2 (text,category)"),
        ("encoder", "Unknown encoder 'tiny-randon'; did you mean 'tiny-random'?"),
        ("no_out", "--out DIR is required to fine-tune (or pass --evaluate DIR to score)"),
        ("not_a_classifier", "'{tmp}' holds no classifier.json, so it is not a classifier"),
        ("evaluate_with_out", "--evaluate scores an existing classifier and writes nothing"),
        ("groups", "group mapping file '{tmp}/groups.json' does not exist"),
        ("epochs", "epochs=-1 must be an integer >= 0"),
    ],
)
def test_mistakes_are_one_line(tmp_path, capsys, train_csv, case, message):
    (tmp_path / "bad.csv").write_text("text,category\nhi,a,b\n")
    data, extra = str(train_csv), []
    out = ["--out", str(tmp_path / "out")]
    if case == "missing":
        data = str(tmp_path / "missing.csv")
    elif case == "bad_csv":
        data = str(tmp_path / "bad.csv")
    elif case == "encoder":
        extra = ["--encoder", "tiny-randon"]
    elif case == "no_out":
        out = []
    elif case == "not_a_classifier":
        out, extra = [], ["--evaluate", str(tmp_path)]
    elif case == "evaluate_with_out":
        extra = ["--evaluate", str(tmp_path)]
    elif case == "groups":
        extra = ["--labels", "group", "--groups", str(tmp_path / "groups.json")]
    elif case == "epochs":
        extra = ["--epochs", "-1"]
    flags = TINY_FLAGS if case != "encoder" else TINY_FLAGS[2:]
    assert main(["finetune", "--data", data, *out, *flags, *extra]) == 2
    assert message.format(tmp=tmp_path) in one_line_error(capsys)
    assert not (tmp_path / "out").exists()


def test_lora_without_peft(tmp_path, capsys, monkeypatch, train_csv):
    monkeypatch.setitem(sys.modules, "peft", None)  # import peft raises ImportError
    argv = ["finetune", "--data", str(train_csv), "--out", str(tmp_path / "out"), "--lora"]
    assert main([*argv, *TINY_FLAGS]) == 2
    assert one_line_error(capsys) == (
        "mode='lora' (--lora) needs the peft package: pip install 'rlagent[finetune]' (or pip "
        "install peft)."
    )
    assert not (tmp_path / "out").exists()


def test_lora_flags_reach_the_settings(tmp_path, capsys, train_csv):
    pytest.importorskip("peft")
    out = tmp_path / "out"
    argv = ["finetune", "--data", str(train_csv), "--out", str(out), *TINY_FLAGS, "--lora"]
    flags = ["--lora-r", "4", "--lora-alpha", "8", "--lora-targets", "query", "value", "dense"]
    assert main([*argv, *flags, "--epochs", "1", "--head-epochs", "0", "--json"]) == 0
    settings = json.loads((out / "finetune.json").read_text())["settings"]
    assert (settings["lora_r"], settings["lora_alpha"]) == (4, 8)
    assert settings["lora_target_modules"] == ["query", "value", "dense"]
