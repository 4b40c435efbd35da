"""Evaluate agents -- trained models, baselines, planners -- on an environment.

Every agent is driven through the same small interface (``reset(seed)`` then ``act(obs)`` on the
raw observation), episode ``i`` is reset with seed ``seed + i`` for every agent (common random
numbers, so differences between agents are not luck of the draw), and the environment's own
metrics (``info["episode_metrics"]``) are averaged alongside the return.
"""

from __future__ import annotations

import math
import os
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
    "check_model_fits_env",
    "evaluate",
    "evaluate_many",
    "format_table",
    "load_agent",
    "make_agent",
    "make_env",
]


class UnknownAgentError(ValueError):
    """Raised when an agent name is neither a saved model nor a baseline of the environment."""


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
    """Return ``env`` itself, or build the env registered as ``env``.

    Ids go through :func:`rlagent.env_making.make_env` (``module:`` prefix, checked kwargs).

    Raises:
        UnknownEnvError: ``env`` is an id that is not registered.
        EnvKwargsError: ``env_kwargs`` names an argument the env lacks, or a value of the
            wrong type.
    """
    if isinstance(env, gym.Env):
        return env
    from rlagent.env_making import make_env as make_registered_env

    return make_registered_env(env, env_kwargs)


def baseline_names(env: gym.Env) -> list[str]:
    """Names of the baseline policies an environment class declares in ``BASELINES``."""
    return list(getattr(env.unwrapped, "BASELINES", {}) or {})


def _env_label(env: gym.Env) -> str:
    spec = getattr(env, "spec", None)
    return spec.id if spec is not None else type(env.unwrapped).__name__


def _names_a_path(path: Path) -> bool:
    """Whether ``path`` is written as a path (a folder part, ``.zip``) or something is there."""
    text = os.fspath(path)
    return (
        path.suffix == ".zip"
        or "/" in text
        or os.sep in text
        or path.exists()
        or path.with_name(path.name + ".zip").exists()
    )


def load_agent(
    agent: str | os.PathLike,
    env: gym.Env | None = None,
    *,
    device: str = "auto",
    trust: bool = False,
) -> Any:
    """A baseline name as it is, or the saved model that ``agent`` names, loaded.

    A baseline of ``env`` wins over a file of the same name. Anything written as a path (a
    folder part, a ``.zip`` suffix) or present on disk is loaded with :func:`rlagent.load`:
    a model directory safely, a pickled ``.zip`` only with ``trust``.

    Args:
        agent: A baseline name of ``env`` or the path of a saved model.
        env: The raw environment, to look up its baselines (``None``: no baselines).
        device: Device to load a model on.
        trust: Allow loading a pickled model (it runs code stored in the file).

    Returns:
        The baseline name (a ``str``) or the loaded model.

    Raises:
        UnknownAgentError: ``agent`` is a bare name that is neither on disk nor a baseline.
        rlagent.agents.ModelFileError: A missing model path, a run directory ("did you mean
            DIR/model?"), a folder or file that is not a model, or a damaged model.
        rlagent.agents.UntrustedModelError: A pickled model without ``trust``.
    """
    name = os.fspath(agent)
    baselines = baseline_names(env) if env is not None else []
    if name in baselines:
        return name
    path = Path(name)
    if _names_a_path(path):
        from rlagent.agents import load

        return load(path, device=device, trust=trust)
    if env is None:
        raise UnknownAgentError(
            f"{name!r} is not a model directory (there is no such file or directory), and "
            "--env is required for a baseline agent: pass the path of a model directory "
            "(`rlagent train` writes DIR/model), or --env ID with one of its baseline names."
        )
    known = ", ".join(sorted(baselines)) or "none"
    raise UnknownAgentError(
        f"Agent {name!r} is neither a model directory nor a baseline of {_env_label(env)} "
        f"(baselines: {known}). Pass the path of a model directory (`rlagent train` writes "
        "DIR/model; a Stable-Baselines3 .zip needs --trust), or one of the baseline names."
    )


def _layout(space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Dict):
        return {key: _layout(sub) for key, sub in space.spaces.items()}
    if isinstance(space, gym.spaces.Discrete):
        return ("Discrete", int(space.n))
    return (type(space).__name__, tuple(space.shape or ()))


def check_model_fits_env(model: Any, env: gym.Env) -> None:
    """Check that ``model`` reads ``env``'s observations and acts in its action space.

    Raises:
        rlagent.agents.ModelEnvMismatchError: The observations the model's pipeline makes of
            ``env`` are laid out differently from the model's observation space, or the
            action spaces differ; the message names the model's env and ``env``.
    """
    from rlagent.agents import ModelEnvMismatchError
    from rlagent.pipeline import pipeline_of, wrap_observations

    spec = getattr(model, "rlagent_spec", None) or {}
    trained = spec.get("env_id")
    pipeline = pipeline_of(model)
    detail = None
    try:
        wrapped = wrap_observations(env, pipeline).observation_space
    except (KeyError, TypeError, ValueError) as exc:
        detail = f"the model's observation pipeline does not apply to it: {exc}"
    else:
        got, want = _layout(wrapped), _layout(model.observation_space)
        if got != want:
            detail = "its observations are laid out differently"
            if isinstance(got, dict) and isinstance(want, dict):
                differ = sorted(set(got) ^ set(want)) or sorted(
                    k for k in want if got[k] != want[k]
                )
                shown = ", ".join(differ[:4]) + (", ..." if len(differ) > 4 else "")
                detail = f"the entries {shown} differ"
        elif _layout(env.action_space) != _layout(model.action_space):
            detail = f"its action space {env.action_space} is not the model's {model.action_space}"
    if detail is None:
        return
    label = _env_label(env)
    if trained:
        where = f"the model was trained on {trained} and the env is {label}"
        hint = f"evaluate it with --env {trained}, or train a model on {label}"
    else:
        where = f"the env is {label}, which the model was not trained on"
        hint = "evaluate it on the env it was trained on"
    raise ModelEnvMismatchError(
        f"The model's observation space does not match the env's: {where} ({detail}); {hint}."
    )


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
    trust: bool = False,
    belief: str | None = None,
) -> Agent:
    """Build an evaluable agent from a name, a model path or a model.

    Args:
        agent: A baseline name from ``env.unwrapped.BASELINES`` (``"random"``,
            ``"heuristic"``...), the path of a saved model (a model directory, or a pickled
            ``.zip`` with ``trust``; see :func:`load_agent`), a loaded SB3 model, or any
            object that already has ``reset`` and ``act``.
        env: The raw environment to act in.
        planner: ``"mcts"`` to plan at decision time with the model's priors and values.
        simulations: MCTS simulations per decision; beats a ``num_simulations`` in
            ``planner_settings`` (``None``: theirs, else 100).
        seed: Seed of the planner's random generator.
        deterministic: For models, take the most likely action.
        device: Device to load a model on.
        planner_settings: :class:`rlagent.planning.MCTSConfig` fields that change the
            planner's defaults (see :func:`rlagent.planning.make_planning_agent`).
        trust: Allow loading a pickled model file (it runs code stored in the file).
        belief: The planner's belief over hidden state: ``"learned"`` (from what the model
            reads; the default where the env supports it), ``"env"`` (the env's own
            likelihood; for customer service a perfect-model upper bound), or ``None`` (the
            settings' ``belief``, else the env's default; see
            :func:`rlagent.planning.make_planning_agent`).

    Returns:
        An object with ``reset(seed)`` and ``act(observation)``.

    Raises:
        UnknownAgentError: ``agent`` is a string that is neither a saved model nor a
            baseline name.
        rlagent.agents.ModelEnvMismatchError: The model does not read ``env``'s observations.
    """
    model = None
    if isinstance(agent, (str, os.PathLike)):
        model = load_agent(agent, env, device=device, trust=trust)
        if isinstance(model, str):
            if planner is not None:
                raise ValueError(
                    f"--planner {planner} needs a trained model to guide it, got baseline {model!r}"
                )
            return env.unwrapped.BASELINES[model](env)
    elif hasattr(agent, "act") and hasattr(agent, "reset"):
        return agent
    else:
        model = agent
    check_model_fits_env(model, env)
    if planner is None:
        return ModelAgent(model, env, deterministic=deterministic)
    if planner != "mcts":
        raise ValueError(f"Unknown planner {planner!r}; the only planner is 'mcts'.")
    from rlagent.planning import make_planning_agent

    return make_planning_agent(
        model, env, simulations=simulations, seed=seed, settings=planner_settings, belief=belief
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
    trust: bool = False,
    belief: str | None = None,
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
        simulations: MCTS simulations per decision; beats a ``num_simulations`` in
            ``planner_settings`` (``None``: theirs, else 100).
        name: Name shown in tables; defaults to the agent's name or path.
        device: Device to load a model on.
        progress: Called with 1 after each episode (e.g. a progress bar's ``update``).
        planner_settings: :class:`rlagent.planning.MCTSConfig` fields that change the
            planner's defaults.
        trust: Allow loading a pickled model file (see :func:`make_agent`).
        belief: The planner's belief over hidden state (see :func:`make_agent`).

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
        trust=trust,
        belief=belief,
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
