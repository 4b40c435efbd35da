"""``rlagent bench serve``: a smoke test of the load generator (no speed thresholds) and its
settings' errors."""

from __future__ import annotations

import json
import re

import pytest

pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from rlagent.cli import main  # noqa: E402
from rlagent.serving import ServingConfigError  # noqa: E402
from rlagent.serving.bench import (  # noqa: E402
    ServeBenchConfig,
    _plans,
    format_serve_bench,
    run_serve_bench,
)

ROW_KEYS = {
    "encoder_dtype",
    "mode",
    "max_batch",
    "clients",
    "requests",
    "errors",
    "seconds",
    "requests_per_s",
    "p50_ms",
    "p99_ms",
    "mean_batch_size",
    "sessions_opened",
    "timed_out",
}


def test_quick_bench_reports_every_level_batched_and_one_at_a_time(capsys):
    assert main(["bench", "serve", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert {"rows", "speedup", "unsupported", "machine", "config", "load_average"} <= set(result)
    assert result["machine"]["cores"] >= 1 and result["machine"]["torch"]
    rows = result["rows"]
    assert {(r["mode"], r["clients"]) for r in rows} == {
        (mode, clients) for mode in ("batched", "one_at_a_time") for clients in (1, 4)
    }
    for row in rows:
        assert ROW_KEYS <= set(row), row
        assert row["encoder_dtype"] == "fp32"
        assert row["requests"] == 8 and row["errors"] == 0 and not row["timed_out"]
        for key in ("seconds", "requests_per_s", "p50_ms", "p99_ms", "mean_batch_size"):
            assert row[key] > 0, (key, row)
        assert row["p99_ms"] >= row["p50_ms"]
        if row["mode"] == "one_at_a_time":
            assert row["max_batch"] == 1 and row["mean_batch_size"] == 1.0
    assert set(result["speedup"]["fp32"]) == {"1", "4"}
    assert all(ratio > 0 for ratio in result["speedup"]["fp32"].values())
    table = format_serve_bench(result)
    assert "batched / one-at-a-time requests/s (fp32)" in table
    assert result["machine"]["cpu"] in table


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"clients": (1, 0)}, "clients=(1, 0) must be ints >= 1, e.g. (1, 16, 64)."),
        ({"requests": 0}, "requests=0 must be an int >= 1."),
        (
            {"encoder_dtypes": ("fp16",)},
            "encoder_dtypes=('fp16',): expected one or more of ('fp32', 'bf16', 'int8')",
        ),
        ({"server_threads": 0}, "server_threads=0 must be >= 1, or None"),
    ],
)
def test_bad_settings_say_what_to_pass(settings, message):
    with pytest.raises(ServingConfigError, match=re.escape(message)):
        ServeBenchConfig(**settings)


def test_a_missing_model_is_refused_before_anything_starts(tmp_path):
    with pytest.raises(ServingConfigError, match=re.escape("does not exist; pass a model folder")):
        run_serve_bench(tmp_path / "nowhere", config=ServeBenchConfig.quick())


def test_dtypes_a_given_model_cannot_take_are_reported_unsupported(tmp_path):
    # Without `rlagent serve --encoder-dtype`, a given model is served as saved.
    config = ServeBenchConfig.quick(encoder_dtypes=("fp32", "int8"))
    plans, unsupported = _plans(tmp_path, None, "default", True, config, False, tmp_path)
    assert plans == [("as-saved", tmp_path)]
    assert set(unsupported) == {"fp32", "int8"}
    assert "has no --encoder-dtype" in unsupported["int8"]
