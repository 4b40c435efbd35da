"""Run outputs a person reads: ``learning_curve.png`` and ``report.md``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["plot_learning_curve", "write_report"]

_SKIP = ("timesteps", "wall_time_s")
_BASELINE_STYLES = ("--", ":", "-.", (0, (5, 1)), (0, (3, 1, 1, 1)))


def plot_learning_curve(
    history: Sequence[Mapping[str, Any]],
    baselines: Mapping[str, Mapping[str, Any]],
    path: Path,
    *,
    main_metric: str | None = None,
    title: str = "",
) -> Path:
    """Plot evaluation return (and the env's main metric) against timesteps.

    Each baseline's level is drawn as a labelled horizontal reference line.

    Args:
        history: Evaluation entries with ``timesteps``, ``mean_return``, ``ci95`` and metrics.
        baselines: Baseline name -> its evaluation dict.
        path: Where to write the PNG.
        main_metric: The env's main metric (e.g. ``success_rate``); drawn in a second panel
            unless it equals the return throughout.
        title: Figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("mean_return", "mean episode return")]
    if main_metric and any(
        main_metric in entry and entry[main_metric] != entry.get("mean_return") for entry in history
    ):
        panels.append((main_metric, main_metric.replace("_", " ")))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    steps = [entry["timesteps"] for entry in history]
    for ax, (key, label) in zip(axes[0], panels, strict=False):
        values = [entry.get(key, float("nan")) for entry in history]
        ax.plot(steps, values, marker="o", color="tab:blue", label="PPO (eval)", zorder=3)
        if key == "mean_return" and history and "ci95" in history[0]:
            ci = [entry.get("ci95", 0.0) for entry in history]
            ax.fill_between(
                steps,
                [v - c for v, c in zip(values, ci, strict=False)],
                [v + c for v, c in zip(values, ci, strict=False)],
                color="tab:blue",
                alpha=0.15,
                label="95% CI",
            )
        for i, (name, result) in enumerate(baselines.items()):
            if key in result:
                ax.axhline(
                    result[key],
                    color=f"C{(i + 1) % 10}",
                    linestyle=_BASELINE_STYLES[i % len(_BASELINE_STYLES)],
                    label=f"{name} ({result[key]:.2f})",
                )
        ax.set_xlabel("environment steps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    keys = ["name", "episodes", "mean_return", "std_return", "ci95", "mean_length"]
    extra: list[str] = []
    for row in rows:
        extra += [k for k in row if k not in keys and k not in extra and k not in _SKIP]
    header = keys + extra
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for row in rows:
        cells = []
        for key in header:
            value = row.get(key, "-")
            cells.append(f"{value:.3f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _warm_start_lines(warm: Mapping[str, Any]) -> list[str]:
    val = warm.get("val_accuracy")
    lines = [
        "## Warm start",
        "",
        f"Before PPO the policy learnt from {warm.get('transitions')} decisions of the "
        f"`{warm.get('expert')}` expert ({warm.get('episodes')} training-env episodes, "
        f"{warm.get('epochs')} epochs, {warm.get('wall_time_s', 0.0):.1f} s).",
        "",
        "| demonstrations | agreement with the expert | critic's squared error |",
        "|---|---|---|",
        f"| training env, before | {warm.get('accuracy_before', 0.0):.3f} | - |",
        f"| training env, after | {warm.get('accuracy', 0.0):.3f} | "
        f"{warm.get('value_loss', 0.0):.4f} |",
    ]
    if val is not None:
        lines.append(
            f"| evaluation env, after | {val:.3f} | {warm.get('val_value_loss') or 0.0:.4f} |"
        )
    lines += [
        "",
        f"Always choosing the expert's most frequent action would agree "
        f"{warm.get('majority_accuracy', 0.0):.3f} of the time.",
        "",
    ]
    return lines


def write_report(path: Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``report.md``: configuration, final evaluation against baselines, speed.

    Args:
        path: Where to write.
        metrics: The run's ``metrics.json`` content.

    Returns:
        ``path``.
    """
    config = metrics.get("config", {})
    lines = [
        f"# Training report: {metrics.get('env_id', '')}",
        "",
        f"- timesteps: {metrics.get('timesteps')}",
        f"- wall time: {metrics.get('wall_time_s', 0.0):.1f} s",
        f"- training speed: {metrics.get('fps', 0.0):.0f} frames/s",
        f"- interrupted: {metrics.get('interrupted', False)}",
        "",
        "## Final evaluation against the baselines",
        "",
    ]
    rows = []
    if metrics.get("final"):
        rows.append({**metrics["final"], "name": "PPO (final)"})
    if metrics.get("best"):
        rows.append({**metrics["best"], "name": "PPO (best_model)"})
    rows += [{**value, "name": name} for name, value in metrics.get("baselines", {}).items()]
    lines += _table(rows) if rows else ["(no evaluation)"]
    eval_env = {**config.get("env_kwargs", {}), **(config.get("eval_env_kwargs") or {})}
    lines += [
        "",
        f"Evaluated on `{metrics.get('env_id')}` with env kwargs `{eval_env}`; the same episode "
        "seeds for every agent; 95% CI is the normal-approximation half-width.",
        "",
        "![learning curve](learning_curve.png)",
        "",
        "## Configuration",
        "",
        "```yaml",
    ]
    import yaml

    lines += [yaml.safe_dump(dict(config), sort_keys=True).rstrip(), "```", ""]
    if metrics.get("warm_start"):
        lines += _warm_start_lines(metrics["warm_start"])
    if metrics.get("encoder_cache"):
        cache = metrics["encoder_cache"]
        lines += [
            "## Encoder cache",
            "",
            f"hit rate {cache.get('hit_rate', 0.0):.4f}, {int(cache.get('size', 0))} distinct "
            "text segments cached",
            "",
        ]
    path.write_text("\n".join(lines))
    return path
