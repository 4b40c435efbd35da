import json

import pytest
import toyenv  # noqa: F401  (registers ToyKeyword-v0)

from rlagent.cli import build_parser, main


def test_parser_knows_the_documented_flags():
    args = build_parser().parse_args(
        [
            "train",
            "--env",
            "rlagent/CustomerService-v0",
            "--env-kwargs",
            "split=test",
            "noise=0.1",
            "--timesteps",
            "1000",
            "--out",
            "runs/x",
            "--encoder",
            "default",
            "--encoder-mode",
            "lora",
            "--n-envs",
            "2",
            "--seed",
            "3",
            "--device",
            "cpu",
            "--resume",
        ]
    )
    assert args.env_kwargs == ["split=test", "noise=0.1"]
    assert args.encoder_mode == "lora" and args.resume and args.n_envs == 2
    args = build_parser().parse_args(
        ["evaluate", "m.zip", "--env", "x", "--planner", "mcts", "--simulations", "50", "--json"]
    )
    assert args.planner == "mcts" and args.simulations == 50 and args.json


def test_resume_and_overwrite_are_exclusive(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--env", "x", "--resume", "--overwrite"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_evaluate_baseline_prints_one_json_object(capsys):
    assert main(["evaluate", "oracle", "--env", "ToyKeyword-v0", "--episodes", "4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["episodes"] == 4
    assert out["mean_return"] == 3.0 and out["std_return"] == 0.0
    assert out["success_rate"] == 1.0
    assert "baselines" not in out


def test_evaluate_table_with_baselines(capsys):
    code = main(["evaluate", "random", "--env", "ToyKeyword-v0", "--episodes", "3", "--baselines"])
    assert code == 0
    table = capsys.readouterr().out
    assert "| random |" in table and "| oracle |" in table and "success_rate" in table


def test_unknown_agent_is_a_clear_error(capsys):
    assert main(["evaluate", "wizard", "--env", "ToyKeyword-v0", "--episodes", "1"]) == 2
    err = capsys.readouterr().err
    assert "'wizard' is neither a model directory nor a baseline" in err
    assert "oracle, random" in err


def test_unknown_env_is_a_clear_error(capsys):
    assert main(["evaluate", "random", "--env", "rlagent/CustomerServce-v0"]) == 2
    assert "CustomerServce" in capsys.readouterr().err


def test_bad_env_kwargs_is_a_clear_error(capsys):
    assert main(["evaluate", "random", "--env", "ToyKeyword-v0", "--env-kwargs", "split"]) == 2
    assert "Expected KEY=VALUE, got 'split'" in capsys.readouterr().err


def test_bench_env_reports_every_bundled_env(capsys):
    assert main(["bench", "env", "--quick", "--repeats", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for env_id in ("rlagent/CustomerService-v0", "rlagent/Recommendation-v0"):
        assert out[env_id]["steps_per_s"] > 0
        assert out[env_id]["steps"] == 1000


def test_evaluate_without_env_for_a_baseline_is_a_clear_error(capsys):
    assert main(["evaluate", "random", "--episodes", "1"]) == 2
    assert "--env is required for a baseline agent" in capsys.readouterr().err


class _Stop(Exception):
    pass


def test_train_passes_encoder_layers_to_the_config(monkeypatch, tmp_path):
    import rlagent.training

    seen = {}

    def fake_train(config, *args, **kwargs):
        seen["layers"] = config.encoder_layers
        raise _Stop

    monkeypatch.setattr(rlagent.training, "train", fake_train)
    base = ["train", "--env", "rlagent/CustomerService-v0", "--out", str(tmp_path / "run")]
    with pytest.raises(_Stop):
        main([*base, "--encoder", "tiny-random", "--encoder-layers", "-1"])
    assert list(seen["layers"]) == [-1]
    with pytest.raises(_Stop):
        main(base)
    assert list(seen["layers"]) == [-1, 3]  # the bundled config's


def test_layers_the_encoder_lacks_are_a_clear_error():
    from rlagent.agents import make_ppo

    with pytest.raises(ValueError, match="3 is out of range.*--encoder-layers"):
        make_ppo(
            "rlagent/CustomerService-v0", encoder="tiny-random", encoder_layers=[-1, 3], n_envs=1
        )


def test_train_without_env_is_a_clear_error(capsys, tmp_path):
    assert main(["train", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (
        "rlagent train: error: --env is required to start a run (with --resume it is read from "
        "the run's config.yaml)\n"
    )
    assert main(["train", "--resume"]) == 2
    assert capsys.readouterr().err == (
        "rlagent train: error: --resume needs --out DIR, the run directory to continue\n"
    )
    assert not (tmp_path / "run").exists()


def test_resume_of_a_folder_that_is_no_run_is_a_clear_error(capsys, tmp_path):
    assert main(["train", "--resume", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"rlagent train: error: Cannot resume: {tmp_path} is not a run directory (no "
        "config.yaml). Start a new run without --resume.\n"
    )


def test_train_overwrite_keeps_a_folder_rlagent_did_not_write(capsys, tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me")
    argv = ["train", "--env", "ToyKeyword-v0", "--out", str(notes), "--overwrite"]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        f"rlagent train: error: {notes} was not written by rlagent train (it has no "
        ".rlagent-run.json), so --overwrite deleted nothing; choose another --out, or empty it "
        "yourself.\n"
    )
    assert [p.name for p in notes.iterdir()] == ["todo.txt"]
