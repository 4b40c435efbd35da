"""A search's results: ``summary.json``, ``summary.md``, ``best_config.yaml`` and ``trials.png``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rlagent.training.config import TrainConfig
from rlagent.training.tuning.config import TuneConfig, _redact
from rlagent.training.tuning.space import _trial_dir, params_to_overrides


def _trial_records(study: Any, out_dir: Path) -> list[dict[str, Any]]:
    records = []
    for trial in study.get_trials(deepcopy=False):
        duration = trial.duration.total_seconds() if trial.duration is not None else None
        value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
        records.append(
            {
                "number": trial.number,
                "state": trial.state.name,
                "value": value,
                "params": dict(trial.params),
                "intermediate_steps": sorted(trial.intermediate_values),
                "intermediate_values": [
                    trial.intermediate_values[k] for k in sorted(trial.intermediate_values)
                ],
                "duration_s": round(duration, 2) if duration is not None else None,
                "run_dir": str(_trial_dir(out_dir, trial.number)),
                **{k: v for k, v in trial.user_attrs.items() if k in ("error", "batch_size")},
            }
        )
    return records


def plot_trials(
    trials: list[Mapping[str, Any]],
    path: Path,
    *,
    title: str = "",
    eval_freq: int | None = None,
) -> Path:
    """Plot a study: each trial's objective with the best so far, and its evaluations.

    Args:
        trials: Records with ``number``, ``state``, ``value``, ``intermediate_values`` and
            optionally ``intermediate_steps`` (see :func:`progress_step`).
        path: Where to write the PNG.
        title: Figure title.
        eval_freq: Environment steps per reported step; with it the evaluations are drawn
            against environment steps.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    pruned = [t for t in trials if t["state"] == "PRUNED" and t["intermediate_values"]]
    left.scatter(
        [t["number"] for t in done],
        [t["value"] for t in done],
        color="tab:blue",
        label="completed trial",
        zorder=3,
    )
    if pruned:
        left.scatter(
            [t["number"] for t in pruned],
            [t["intermediate_values"][-1] for t in pruned],
            color="tab:orange",
            marker="x",
            label="pruned (last evaluation)",
            zorder=3,
        )
    best_x, best_y, best = [], [], -math.inf
    for t in sorted(done, key=lambda t: t["number"]):
        best = max(best, t["value"])
        best_x.append(t["number"])
        best_y.append(best)
    if best_x:
        left.step(best_x, best_y, where="post", color="tab:red", label="best so far")
    left.set_xlabel("trial number")
    left.set_ylabel("final mean episode return (objective)")
    left.set_title("objective per trial")
    best_number = max(done, key=lambda t: t["value"])["number"] if done else None
    for t in trials:
        values = t["intermediate_values"]
        if not values:
            continue
        steps = list(t.get("intermediate_steps") or range(1, len(values) + 1))
        if eval_freq:
            steps = [step * eval_freq for step in steps]
        if t["number"] == best_number:
            right.plot(
                steps,
                values,
                color="tab:red",
                lw=2.5,
                marker="o",
                zorder=3,
                label=f"best (trial {best_number})",
            )
        elif t["state"] == "PRUNED":
            right.plot(steps, values, color="tab:orange", lw=1, ls="--", marker=".", alpha=0.7)
        else:
            right.plot(steps, values, color="tab:blue", lw=1, marker=".", alpha=0.6)
    if any(t["state"] != "PRUNED" and t["number"] != best_number for t in trials):
        right.plot([], [], color="tab:blue", lw=1, label="other trials")
    if pruned:
        right.plot([], [], color="tab:orange", lw=1, ls="--", label="pruned trials")
    right.set_xlabel("environment steps trained" if eval_freq else "evaluation")
    right.set_ylabel("mean episode return")
    right.set_title("evaluations within each trial")
    left.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=9)
    counts = {s: sum(t["state"] == s for t in trials) for s in ("COMPLETE", "PRUNED", "FAIL")}
    fig.suptitle(
        f"{title}  ({len(trials)} trial{'s' * (len(trials) != 1)}: "
        f"{counts['COMPLETE']} completed, "
        f"{counts['PRUNED']} pruned, {counts['FAIL']} failed)".strip()
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _markdown(summary: Mapping[str, Any]) -> str:
    lines = [
        f"# Tuning {summary['env_id']}: study `{summary['study_name']}`",
        "",
        f"- backend: {summary['backend']}, sampler: {summary['sampler']}, "
        f"pruner: {summary['pruner']}",
        f"- storage: {summary['storage'] or 'in memory'}",
        f"- trials: {summary['n_trials']} ({summary['n_complete']} completed, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed); "
        f"{summary['n_trials_this_run']} run by this process",
        f"- steps per trial: {summary['timesteps_per_trial']}",
        "",
    ]
    best = summary["best_trial"]
    if best is None:
        lines += ["No trial has completed yet.", ""]
    else:
        lines += [
            f"## Best trial: {best['number']} (mean return {best['value']:.4g})",
            "",
            "| parameter | value |",
            "|---|---|",
            *[f"| {k} | {v} |" for k, v in sorted(best["params"].items())],
            "",
            f"Run directory: `{best['run_dir']}`. Train with these settings:",
            "",
            f"    rlagent train --env {summary['env_id']} --config {summary['files']['config']}",
            "",
        ]
    lines += [
        "## All trials",
        "",
        "| trial | state | objective | duration (s) |",
        "|---|---|---|---|",
    ]
    ranked = sorted(
        summary["trials"],
        key=lambda t: (t["state"] != "COMPLETE", t["value"] is None, -(t["value"] or 0.0)),
    )
    for t in ranked:
        value = "" if t["value"] is None else f"{t['value']:.4g}"
        if value and t["state"] == "PRUNED":
            value += " (last evaluation)"
        lines.append(f"| {t['number']} | {t['state']} | {value} | {t['duration_s'] or ''} |")
    lines += ["", f"![trials]({Path(summary['files']['plot']).name})", ""]
    return "\n".join(lines)


def _summarise(
    config: TuneConfig, base: TrainConfig, study: Any, out_dir: Path, numbers: list[int]
) -> dict[str, Any]:
    trials = _trial_records(study, out_dir)
    states = [t["state"] for t in trials]
    done = [t for t in trials if t["state"] == "COMPLETE" and t["value"] is not None]
    best = max(done, key=lambda t: t["value"]) if done else None
    files = {
        "summary_json": str(out_dir / "summary.json"),
        "summary_md": str(out_dir / "summary.md"),
        "plot": str(out_dir / "trials.png"),
        "config": str(out_dir / "best_config.yaml"),
    }
    summary: dict[str, Any] = {
        "env_id": config.env_id,
        "study_name": config.resolved_study_name,
        "storage": _redact(config.storage),
        "backend": config.backend,
        "sampler": config.sampler,
        "pruner": config.pruner,
        "timesteps_per_trial": base.n_timesteps,
        "n_trials": len(trials),
        "n_trials_this_run": len(numbers),
        "n_complete": states.count("COMPLETE"),
        "n_pruned": states.count("PRUNED"),
        "n_failed": states.count("FAIL"),
        "interrupted": any(
            t.get("error") == "interrupted" for t in trials if t["number"] in set(numbers)
        ),
        "best_trial": None,
        "out_dir": str(out_dir),
        "files": files,
        "trials": trials,
    }
    if best is not None:
        # What defines the trial's training besides the budget: its sampled settings, and the
        # env count and encoder (and its pooled layers) its batch size and features were tuned
        # with.
        settings = {
            "n_envs": base.n_envs,
            "encoder": base.encoder,
            "encoder_mode": base.encoder_mode,
            **params_to_overrides(best["params"], base),
        }
        if base.encoder_layers is not None:
            settings["encoder_layers"] = [int(layer) for layer in base.encoder_layers]
        summary["best_trial"] = {
            "number": best["number"],
            "value": best["value"],
            "params": best["params"],
            "run_dir": best["run_dir"],
            "config": settings,
        }
        _write_atomic(Path(files["config"]), yaml.safe_dump(settings, sort_keys=True))
    # Several processes of one study may finish together: write each file whole, then rename.
    plot = Path(files["plot"])
    tmp_plot = plot.with_name(f".{plot.stem}-{os.getpid()}.png")
    plot_trials(
        trials,
        tmp_plot,
        title=f"{config.env_id}: {summary['study_name']}",
        eval_freq=base.eval_freq,
    )
    os.replace(tmp_plot, plot)
    _write_atomic(Path(files["summary_json"]), json.dumps(summary, indent=2, default=str))
    _write_atomic(Path(files["summary_md"]), _markdown(summary))
    return summary


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}-{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def format_tune_summary(summary: Mapping[str, Any]) -> str:
    """A few lines for a person: the study, trial counts, the best trial and the files."""
    lines = [
        f"Study {summary['study_name']!r} on {summary['env_id']} "
        f"({summary['backend']}, {summary['sampler']} sampler, {summary['pruner']} pruner; "
        f"storage: {summary['storage'] or 'in memory'})",
        f"Trials: {summary['n_trials']} in the study ({summary['n_complete']} completed, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed), "
        f"{summary['n_trials_this_run']} run here, {summary['timesteps_per_trial']} steps each",
    ]
    best = summary.get("best_trial")
    if best is None:
        lines.append("Best trial: none completed yet")
    else:
        lines.append(f"Best trial: {best['number']} with mean return {best['value']:.4g}")
        width = max(len(k) for k in best["params"]) if best["params"] else 0
        lines += [f"  {k:<{width}}  {v}" for k, v in sorted(best["params"].items())]
        lines.append(f"  run: {best['run_dir']}")
    if summary.get("interrupted"):
        lines.append(
            "Interrupted: the running trial was stopped; "
            + (
                "run the same command again to continue the study"
                if summary["storage"]
                else "the study was in memory: pass --storage to keep one you can continue"
            )
        )
    files = summary["files"]
    lines.append(f"Summary: {files['summary_md']} (JSON: {files['summary_json']})")
    lines.append(f"Plot: {files['plot']}")
    if best is not None:
        lines.append(
            f"Train with the best settings: rlagent train --env {summary['env_id']} "
            f"--config {files['config']}"
        )
    return "\n".join(lines)
