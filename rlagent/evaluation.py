"""Evaluate agents -- trained models, baselines, planners -- on an environment.

Every agent is driven through the same small interface (``reset(seed)`` then ``act(obs)`` on the
raw observation), episode ``i`` is reset with seed ``seed + i`` for every agent (common random
numbers, so differences between agents are not luck of the draw), and the environment's own
metrics (``info["episode_metrics"]``) are averaged alongside the return.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

__all__ = [
    "Agent",
    "EvalResult",
    "ModelAgent",
    "UnknownAgentError",
    "baseline_names",
    "evaluate",
    "evaluate_many",
    "format_table",
    "make_agent",
    "make_env",
]


class UnknownAgentError(ValueError):
    """Raised when an agent name is neither a model file nor a baseline of the environment."""


class Agent(Protocol):
    """What evaluation drives: baselines, wrapped models and planners all look like this."""

    def reset(self, seed: int | None = None) -> None:
        """Called after each ``env.reset``."""

    def act(self, observation: Any) -> Any:
        """Return the action for a raw observation."""


@dataclass(frozen=True)
class EvalResult:
    """The outcome of evaluating one agent.

    Attributes:
        name: The agent's name (``"random"``, ``"heuristic"``, a model path...).
        episodes: Number of episodes played.
        mean_return: Mean undiscounted episode return.
        std_return: Standard deviation of the episode return.
        ci95: Half-width of the normal-approximation 95% confidence interval of the mean.
        mean_length: Mean episode length in steps.
        metrics: The environment's own metrics averaged over episodes (e.g. ``success_rate``).
    """

    name: str
    episodes: int
    mean_return: float
    std_return: float
    ci95: float
    mean_length: float
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A flat JSON-ready dict: the fields above with ``metrics`` merged in at top level."""
        out = asdict(self)
        out.update(out.pop("metrics"))
        return out


class ModelAgent:
    """Drives a Stable-Baselines3 model on raw observations of ``env``.

    Args:
        model: A model built by :func:`rlagent.make_ppo` or loaded by :func:`rlagent.load`.
        env: The raw environment the agent will act in (used to build the same tokenizer
            the model was trained with).
        deterministic: Take the most likely action instead of sampling.
    """

    def __init__(self, model: Any, env: gym.Env, *, deterministic: bool = True) -> None:
        from rlagent.pipeline import observation_converter, pipeline_of

        self.model = model
        self.deterministic = deterministic
        self._convert = observation_converter(env, pipeline_of(model))
        self._discrete = isinstance(env.action_space, gym.spaces.Discrete)

    def reset(self, seed: int | None = None) -> None:
        """Nothing to reset: the policy is stateless."""

    def act(self, observation: Any) -> Any:
        """Tokenize ``observation`` and return the model's action."""
        action, _ = self.model.predict(self._convert(observation), deterministic=self.deterministic)
        return int(action) if self._discrete else action


def make_env(env: str | gym.Env, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env:
    """Return ``env`` itself, or ``gym.make(env, **env_kwargs)`` for a registered id."""
    if isinstance(env, gym.Env):
        return env
    import envs  # noqa: F401  (registers the bundled ids)

    return gym.make(env, **dict(env_kwargs or {}))


def baseline_names(env: gym.Env) -> list[str]:
    """Names of the baseline policies an environment class declares in ``BASELINES``."""
    return list(getattr(env.unwrapped, "BASELINES", {}) or {})


def make_agent(
    agent: str | Path | Any,
    env: gym.Env,
    *,
    planner: str | None = None,
    simulations: int | None = None,
    seed: int | None = None,
    deterministic: bool = True,
    device: str = "auto",
    planner_settings: Mapping[str, Any] | None = None,
) -> Agent:
    """Build an evaluable agent from a name, a model path or a model.

    Args:
        agent: A baseline name from ``env.unwrapped.BASELINES`` (``"random"``,
            ``"heuristic"``...), a path to a saved model (``.zip``), a loaded SB3 model, or any
            object that already has ``reset`` and ``act``.
        env: The raw environment to act in.
        planner: ``"mcts"`` to plan at decision time with the model's priors and values.
        simulations: MCTS simulations per decision; ``None``: ``planner_settings``'
            ``num_simulations``, else 100 (:func:`rlagent.planning.make_planning_agent`).
        seed: Seed of the planner's random generator.
        deterministic: For models, take the most likely action.
        device: Device to load a model on.
        planner_settings: :class:`rlagent.planning.MCTSConfig` fields that change the
            planner's defaults (see :func:`rlagent.planning.make_planning_agent`).

    Returns:
        An object with ``reset(seed)`` and ``act(observation)``.

    Raises:
        UnknownAgentError: ``agent`` is a string that is neither a file nor a baseline name.
    """
    model = None
    if isinstance(agent, (str, Path)):
        name = str(agent)
        baselines = getattr(env.unwrapped, "BASELINES", {}) or {}
        if name in baselines:
            if planner is not None:
                raise ValueError(
                    f"--planner {planner} needs a trained model to guide it, got baseline {name!r}"
                )
            return baselines[name](env)
        path = Path(name)
        if path.suffix != ".zip" and not path.exists() and path.with_suffix(".zip").exists():
            path = path.with_suffix(".zip")
        if not path.is_file():
            known = ", ".join(sorted(baselines)) or "none"
            raise UnknownAgentError(
                f"Agent {name!r} is neither a model file nor a baseline of "
                f"{type(env.unwrapped).__name__} (baselines: {known}). Pass the path of a "
                "model.zip written by `rlagent train`, or one of the baseline names."
            )
        from rlagent.agents import load

        model = load(path, device=device)
    elif hasattr(agent, "act") and hasattr(agent, "reset"):
        return agent
    else:
        model = agent
    if planner is None:
        return ModelAgent(model, env, deterministic=deterministic)
    if planner != "mcts":
        raise ValueError(f"Unknown planner {planner!r}; the only planner is 'mcts'.")
    from rlagent.planning import make_planning_agent

    return make_planning_agent(
        model, env, simulations=simulations, seed=seed, settings=planner_settings
    )


def _to_action(action: Any, space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Discrete):
        return int(action)
    return action


def evaluate(
    agent: str | Path | Any,
    env: str | gym.Env,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    episodes: int = 100,
    seed: int = 0,
    deterministic: bool = True,
    planner: str | None = None,
    simulations: int | None = None,
    name: str | None = None,
    device: str = "auto",
    progress: Callable[[int], None] | None = None,
    planner_settings: Mapping[str, Any] | None = None,
) -> EvalResult:
    """Play ``episodes`` episodes and summarise returns and the environment's metrics.

    Args:
        agent: See :func:`make_agent`.
        env: A registered id or a raw environment instance.
        env_kwargs: Keyword arguments for ``gym.make`` when ``env`` is an id.
        episodes: Number of episodes; episode ``i`` is reset with seed ``seed + i``.
        seed: Base seed.
        deterministic: For models, take the most likely action.
        planner: ``"mcts"`` to plan at decision time (models only).
        simulations: MCTS simulations per decision (see :func:`make_agent`).
        name: Name shown in tables; defaults to the agent's name or path.
        device: Device to load a model on.
        progress: Called with 1 after each episode (e.g. a progress bar's ``update``).
        planner_settings: :class:`rlagent.planning.MCTSConfig` fields that change the
            planner's defaults.

    Returns:
        The :class:`EvalResult`.

    Raises:
        ValueError: ``episodes`` is not positive.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    environment = make_env(env, env_kwargs)
    actor = make_agent(
        agent,
        environment,
        planner=planner,
        simulations=simulations,
        seed=seed,
        deterministic=deterministic,
        device=device,
        planner_settings=planner_settings,
    )
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes)
    metric_sums: dict[str, float] = {}
    for i in range(episodes):
        obs, info = environment.reset(seed=seed + i)
        actor.reset(seed=seed + i)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = environment.step(
                _to_action(actor.act(obs), environment.action_space)
            )
            returns[i] += float(reward)
            lengths[i] += 1
            done = terminated or truncated
        for key, value in (info.get("episode_metrics") or {}).items():
            metric_sums[key] = metric_sums.get(key, 0.0) + float(value)
        if progress is not None:
            progress(1)
    std = float(returns.std(ddof=1)) if episodes > 1 else 0.0
    if name is None:
        name = agent if isinstance(agent, (str, Path)) else type(agent).__name__
    return EvalResult(
        name=str(name),
        episodes=episodes,
        mean_return=float(returns.mean()),
        std_return=std,
        ci95=1.96 * std / math.sqrt(episodes),
        mean_length=float(lengths.mean()),
        metrics={k: v / episodes for k, v in metric_sums.items()},
    )


def evaluate_many(
    agents: Iterable[str | Path | Any],
    env: str | gym.Env,
    **kwargs: Any,
) -> list[EvalResult]:
    """Evaluate several agents with the same seeds; keyword arguments as for :func:`evaluate`."""
    return [evaluate(agent, env, **kwargs) for agent in agents]


def format_table(results: Sequence[EvalResult], *, title: str | None = None) -> str:
    """Format results as a Markdown table: mean, std, 95% CI, length and each env metric."""
    metric_keys: list[str] = []
    for result in results:
        metric_keys += [k for k in result.metrics if k not in metric_keys]
    header = ["agent", "episodes", "mean return", "std", "95% CI", "mean length", *metric_keys]
    rows = [
        [
            r.name,
            str(r.episodes),
            f"{r.mean_return:.2f}",
            f"{r.std_return:.2f}",
            f"+-{r.ci95:.2f}",
            f"{r.mean_length:.2f}",
            *(f"{r.metrics[k]:.3f}" if k in r.metrics else "-" for k in metric_keys),
        ]
        for r in results
    ]
    lines = [] if title is None else [f"**{title}**", ""]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)
