"""`rlagent evaluate` and `rlagent export` on model files: safe by default, one-line errors."""

from __future__ import annotations

import json
import pathlib
import shutil
import zipfile

import pytest
import toyenv  # noqa: F401  (registers ToyKeyword-v0)
from crafted_pickles import crafted_sb3_data
from tiny_models import TINY

from rlagent.agents import make_ppo, save_model
from rlagent.agents.saving import is_model_dir
from rlagent.cli import main

CS = "rlagent/CustomerService-v0"
REC = "rlagent/Recommendation-v0"
QUICK = ["--episodes", "1", "--no-baselines"]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> pathlib.Path:
    """A folder with a tiny customer-service model as a model directory and as an SB3 zip."""
    folder = tmp_path_factory.mktemp("models")
    model = make_ppo(CS, **TINY)
    save_model(model, folder / "model")
    model.save(folder / "model.zip")
    return folder


def _rewrite_zip(source: pathlib.Path, target: pathlib.Path, change) -> pathlib.Path:
    """Copy a zip entry by entry; ``change(name, data)`` returns new data or None to drop it."""
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for item in src.infolist():
            data = change(item.filename, src.read(item.filename))
            if data is not None:
                dst.writestr(item, data)
    return target


def _one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI, check it failed with one line on stderr and no traceback; the message."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    prefix = f"rlagent {argv[0]}: error: "
    assert err.startswith(prefix), err
    return err[len(prefix) : -1]


def test_evaluate_reads_a_model_directory_and_its_env(models, capsys):
    assert main(["evaluate", str(models / "model"), *QUICK, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["env_id"] == CS and out["episodes"] == 1


def test_evaluate_plans_on_a_model_directory(models, capsys):
    argv = ["evaluate", str(models / "model"), *QUICK, "--planner", "mcts", "--simulations", "2"]
    assert main([*argv, "--belief", "env", "--json"]) == 0  # no probe: the env's likelihood
    assert json.loads(capsys.readouterr().out)["episodes"] == 1


def test_a_zip_is_refused_without_trust_and_loads_with_it(models, capsys):
    path = models / "model.zip"
    message = _one_line_error(capsys, ["evaluate", str(path), *QUICK])
    assert message.startswith(f"{path} is a pickled model (a Stable-Baselines3 .zip): loading it")
    assert "--trust on the command line" in message and f"rlagent export {path} OUT" in message
    assert main(["evaluate", str(path), *QUICK, "--trust", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["env_id"] == CS


def test_a_crafted_zip_runs_no_code_on_evaluate(models, tmp_path, capsys):
    marker = tmp_path / "payload-ran"

    def craft(name, data):
        if name != "data":
            return data
        return crafted_sb3_data(data, marker).encode()

    evil = _rewrite_zip(models / "model.zip", tmp_path / "evil.zip", craft)
    message = _one_line_error(capsys, ["evaluate", str(evil), "--env", CS, *QUICK])
    assert message.startswith(f"{evil} is a pickled model")
    assert not marker.exists()


def test_export_converts_a_zip_into_a_model_directory(models, tmp_path, capsys):
    out = tmp_path / "exported"
    assert main(["export", str(models / "model.zip"), str(out)]) == 0
    assert f"Wrote {out}" in capsys.readouterr().out
    assert is_model_dir(out)
    assert main(["evaluate", str(out), *QUICK, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["env_id"] == CS
    message = _one_line_error(capsys, ["export", str(out), str(tmp_path / "again")])
    assert message == f"{out} is already a safe model directory; nothing to export."


def test_a_missing_model_path_is_named_as_given(tmp_path, capsys):
    missing = tmp_path / "x.zip"
    message = _one_line_error(capsys, ["evaluate", str(missing), "--env", CS])
    assert message == f"No model at {missing} (no such file or directory)"


def test_a_run_directory_given_as_the_model_suggests_its_model(models, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"env_id: {CS}\n")
    shutil.copytree(models / "model", run / "model")
    message = _one_line_error(capsys, ["evaluate", str(run)])
    assert message == f"{run} is a run directory, not a model; did you mean {run / 'model'}?"


def test_a_name_that_is_neither_a_model_nor_a_baseline(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    message = _one_line_error(capsys, ["evaluate", "mymodel", "--env", "ToyKeyword-v0"])
    assert message == (
        "Agent 'mymodel' is neither a model directory nor a baseline of ToyKeyword-v0 "
        "(baselines: oracle, random). Pass the path of a model directory (`rlagent train` "
        "writes DIR/model; a Stable-Baselines3 .zip needs --trust), or one of the baseline names."
    )
    message = _one_line_error(capsys, ["evaluate", "mymodel"])
    assert message == (
        "'mymodel' is not a model directory (there is no such file or directory), and --env is "
        "required for a baseline agent: pass the path of a model directory (`rlagent train` "
        "writes DIR/model), or --env ID with one of its baseline names."
    )


def test_a_zip_without_data_is_one_line(models, tmp_path, capsys):
    path = _rewrite_zip(
        models / "model.zip", tmp_path / "nodata.zip", lambda n, d: None if n == "data" else d
    )
    message = _one_line_error(capsys, ["evaluate", str(path), "--trust", *QUICK])
    assert message == (
        f"{path} could not be read as a Stable-Baselines3 model (AssertionError: No data found "
        "in the saved file); the file is damaged or not a model: save or export the model again."
    )


def test_a_truncated_policy_file_in_a_trusted_zip_is_one_line(models, tmp_path, capsys):
    path = _rewrite_zip(
        models / "model.zip",
        tmp_path / "truncated.zip",
        lambda n, d: d[: len(d) // 2] if n == "policy.pth" else d,
    )
    message = _one_line_error(capsys, ["evaluate", str(path), "--trust", *QUICK])
    assert message.startswith(f"{path} could not be read as a Stable-Baselines3 model (")
    assert message.endswith("the file is damaged or not a model: save or export the model again.")
    cut = tmp_path / "cut.zip"
    cut.write_bytes((models / "model.zip").read_bytes()[:200])
    message = _one_line_error(capsys, ["evaluate", str(cut), "--trust", *QUICK])
    assert message == (
        f"{cut} is not a readable zip archive: it is truncated or corrupt, or not a model; "
        "save or export the model again."
    )


def test_a_truncated_weights_file_is_one_line(models, tmp_path, capsys):
    path = shutil.copytree(models / "model", tmp_path / "model")
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    message = _one_line_error(capsys, ["evaluate", str(path), *QUICK])
    assert message == (
        f"{weights} is truncated or corrupt (it does not match the checksum in manifest.json); "
        "save or export the model again."
    )


def test_a_model_evaluated_on_another_env_names_both(models, capsys):
    message = _one_line_error(capsys, ["evaluate", str(models / "model"), "--env", REC, *QUICK])
    assert message.startswith(
        f"The model's observation space does not match the env's: the model was trained on "
        f"{CS} and the env is {REC} (the entries "
    )
    assert message.endswith(f"evaluate it with --env {CS}, or train a model on {REC}.")
