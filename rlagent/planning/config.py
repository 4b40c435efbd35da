"""Search settings: one frozen dataclass, validated on construction."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlagent.planning.model import PlanningConfigError

__all__ = [
    "AGENT_SETTINGS",
    "BELIEFS",
    "MCTSConfig",
    "bundled_planner_settings",
    "check_belief",
    "check_settings",
    "read_planner_settings",
    "split_settings",
]

#: The beliefs over hidden state a planning agent can use (see docs/planning.md).
BELIEFS: tuple[str, ...] = ("learned", "env")
#: Planner settings that are the agent's rather than the search's (:class:`MCTSConfig`'s).
AGENT_SETTINGS: tuple[str, ...] = ("belief",)

_BUNDLED_DIR = Path(__file__).resolve().parent.parent / "configs" / "planning"


@dataclass(frozen=True)
class MCTSConfig:
    """Settings of :class:`rlagent.planning.MCTS`.

    Attributes:
        num_simulations: Simulations per call to ``search`` (each expands or evaluates one leaf).
        selection: ``"uct"`` (UCB1: ``q + uct_c * sqrt(ln N / n)``, priors ignored, unvisited
            actions tried first) or ``"puct"`` (AlphaZero:
            ``q + c(N) * prior * sqrt(N) / (1 + n)`` with
            ``c(N) = pb_c_init + ln((N + pb_c_base + 1) / pb_c_base)``).
        uct_c: UCT exploration constant. With ``normalize_q`` it is relative to the range of
            Q values in the whole tree, which for returns summed over many steps spans every
            depth (about 4 on the MDPs of ``rlagent bench mcts``, where ``uct_c=1`` therefore
            explores like 4 on raw returns; see docs/planning.md, "Measured").
        pb_c_init: PUCT exploration constant.
        pb_c_base: PUCT visit scale at which exploration starts to grow.
        discount: Discount factor applied per model step, in ``[0, 1]``.
        max_depth: Model steps below the root after which a leaf is scored by the evaluator
            instead of being expanded (``None``: no limit).
        chance: ``"closed_loop"`` (children keyed by the sampled next state, a fresh outcome
            sampled on every visit; correct on stochastic models) or ``"open_loop"`` (children
            keyed by the action only; states re-simulated from the root each time; only right
            when the best plan does not depend on chance outcomes).
        normalize_q: Rescale Q values to ``[0, 1]`` with the minimum and maximum seen in the
            tree (MuZero), so that ``uct_c`` / ``pb_c_init`` need no tuning per reward scale.
        dirichlet_alpha: Concentration of Dirichlet noise mixed into the root priors
            (``None``: no noise). Only meaningful with ``selection="puct"``.
        dirichlet_fraction: Weight of that noise.
        temperature: ``0`` picks the most visited root action (ties broken by Q); ``t > 0``
            samples an action with probability proportional to ``visits ** (1 / t)``.
        widening_c: Progressive widening: a node with ``N`` visits considers only its
            ``ceil(widening_c * N ** widening_alpha)`` actions of highest prior (``None``:
            every action).
        widening_alpha: Exponent of progressive widening, in ``(0, 1)``.
        chance_widening_c: Progressive widening of chance outcomes (closed loop only): once an
            edge visited ``n`` times has ``ceil(chance_widening_c * n ** chance_widening_alpha)``
            distinct outcomes, a visit revisits one of them (in proportion to how often each
            was reached) instead of sampling the model. Lets the tree grow deep when outcomes
            rarely repeat (fresh candidates, noisy text); ``None`` (default) always samples.
        chance_widening_alpha: Exponent of chance widening, in ``(0, 1)``.
        reuse_tree: Keep the subtree of the realised state between calls to ``search``.
        batch_size: Leaves collected (with virtual loss) before one call to the evaluator's
            ``evaluate_batch``; ``1`` evaluates each leaf at once.
        virtual_loss: Visits added (each worth the lowest Q seen in the tree) to every edge on
            a pending path, so that one batch spreads over different leaves.
        common_random_numbers: Common random numbers: the ``k``-th model step taken from a
            node with any of its actions gets a generator seeded by the search, the node and
            ``k``, so sibling actions are compared on the same chance draws (the same sampled
            user response, the same next candidates, the same belief particle). Every
            estimate stays unbiased; differences between actions lose the noise their
            outcomes share. Costs a generator per model step, so off by default.
    """

    num_simulations: int = 800
    selection: Literal["uct", "puct"] = "uct"
    uct_c: float = 1.0
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    discount: float = 1.0
    max_depth: int | None = None
    chance: Literal["closed_loop", "open_loop"] = "closed_loop"
    normalize_q: bool = True
    dirichlet_alpha: float | None = None
    dirichlet_fraction: float = 0.25
    temperature: float = 0.0
    widening_c: float | None = None
    widening_alpha: float = 0.5
    chance_widening_c: float | None = None
    chance_widening_alpha: float = 0.5
    reuse_tree: bool = False
    batch_size: int = 1
    virtual_loss: int = 1
    common_random_numbers: bool = False

    def __post_init__(self) -> None:
        """Check every setting; raise :class:`PlanningConfigError` naming the bad one."""
        _check(
            isinstance(self.num_simulations, int) and self.num_simulations >= 1,
            "num_simulations",
            self.num_simulations,
            "an int >= 1",
        )
        _check(self.selection in ("uct", "puct"), "selection", self.selection, "'uct' or 'puct'")
        _check(
            self.chance in ("closed_loop", "open_loop"),
            "chance",
            self.chance,
            "'closed_loop' or 'open_loop'",
        )
        _check(_finite(self.uct_c) and self.uct_c >= 0, "uct_c", self.uct_c, "a float >= 0")
        _check(
            _finite(self.pb_c_init) and self.pb_c_init >= 0,
            "pb_c_init",
            self.pb_c_init,
            "a float >= 0",
        )
        _check(
            _finite(self.pb_c_base) and self.pb_c_base > 0,
            "pb_c_base",
            self.pb_c_base,
            "a float > 0",
        )
        _check(
            _finite(self.discount) and 0.0 <= self.discount <= 1.0,
            "discount",
            self.discount,
            "a float in [0, 1]",
        )
        _check(
            self.max_depth is None or (isinstance(self.max_depth, int) and self.max_depth >= 1),
            "max_depth",
            self.max_depth,
            "None or an int >= 1",
        )
        _check(
            self.dirichlet_alpha is None
            or (_finite(self.dirichlet_alpha) and self.dirichlet_alpha > 0),
            "dirichlet_alpha",
            self.dirichlet_alpha,
            "None or a float > 0",
        )
        _check(
            _finite(self.dirichlet_fraction) and 0.0 <= self.dirichlet_fraction <= 1.0,
            "dirichlet_fraction",
            self.dirichlet_fraction,
            "a float in [0, 1]",
        )
        _check(
            _finite(self.temperature) and self.temperature >= 0,
            "temperature",
            self.temperature,
            "a float >= 0",
        )
        _check(
            self.widening_c is None or (_finite(self.widening_c) and self.widening_c > 0),
            "widening_c",
            self.widening_c,
            "None or a float > 0",
        )
        _check(
            _finite(self.widening_alpha) and 0.0 < self.widening_alpha < 1.0,
            "widening_alpha",
            self.widening_alpha,
            "a float in (0, 1)",
        )
        _check(
            self.chance_widening_c is None
            or (_finite(self.chance_widening_c) and self.chance_widening_c > 0),
            "chance_widening_c",
            self.chance_widening_c,
            "None or a float > 0",
        )
        _check(
            _finite(self.chance_widening_alpha) and 0.0 < self.chance_widening_alpha < 1.0,
            "chance_widening_alpha",
            self.chance_widening_alpha,
            "a float in (0, 1)",
        )
        _check(
            isinstance(self.batch_size, int) and self.batch_size >= 1,
            "batch_size",
            self.batch_size,
            "an int >= 1",
        )
        _check(
            isinstance(self.virtual_loss, int) and self.virtual_loss >= 0,
            "virtual_loss",
            self.virtual_loss,
            "an int >= 0",
        )
        _check(
            isinstance(self.common_random_numbers, bool),
            "common_random_numbers",
            self.common_random_numbers,
            "True or False",
        )
        if self.chance == "open_loop" and self.chance_widening_c is not None:
            raise PlanningConfigError(
                "MCTSConfig: chance_widening_c needs chance='closed_loop' (open-loop nodes keep "
                "no outcomes); set chance_widening_c=None or use chance='closed_loop'."
            )
        if self.chance == "open_loop" and self.reuse_tree:
            raise PlanningConfigError(
                "MCTSConfig: reuse_tree=True needs chance='closed_loop' (an open-loop tree does "
                "not know which state a node stands for); set reuse_tree=False or use "
                "chance='closed_loop'."
            )


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(ok: bool, name: str, value: object, expected: str) -> None:
    if not ok:
        raise PlanningConfigError(
            f"MCTSConfig.{name}: got {value!r}, expected {expected}; "
            f"pass a valid {name}=... or leave it at its default."
        )


def read_planner_settings(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping of :class:`MCTSConfig` fields (``rlagent evaluate --planner-config``).

    Args:
        path: The YAML file, e.g. holding ``max_depth: 1`` and ``common_random_numbers: true``.

    Returns:
        The settings, checked by building an :class:`MCTSConfig` from them.

    Raises:
        PlanningConfigError: The file is missing, not YAML, not a mapping, names a field that
            :class:`MCTSConfig` lacks, or holds a value out of range.
    """
    from rlagent._yaml import read_yaml_mapping

    data = read_yaml_mapping(path, what="Planner config", error=PlanningConfigError)
    source = f"Planner config {path}"
    check_settings(data, source)
    agent, search = split_settings(data)
    if "belief" in agent:
        check_belief(agent["belief"], source)
    MCTSConfig(**search)
    return dict(data)


def check_settings(settings: Mapping[str, Any], source: str = "Planner settings") -> None:
    """Raise :class:`PlanningConfigError` if ``settings`` names a field MCTSConfig lacks.

    The agent's own settings (:data:`AGENT_SETTINGS`: ``belief``) are allowed beside the
    :class:`MCTSConfig` fields.

    Args:
        settings: Field names and values.
        source: Where they came from, for the message.
    """
    known = {f.name for f in dataclasses.fields(MCTSConfig)}
    unknown = sorted(map(str, set(settings) - known - set(AGENT_SETTINGS)))
    if unknown:
        raise PlanningConfigError(
            f"{source}: {', '.join(unknown)} are not MCTSConfig fields; known fields are "
            f"{', '.join(sorted(known))} (and the agent's {', '.join(AGENT_SETTINGS)})."
        )


def split_settings(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(agent settings, MCTSConfig fields)`` of a planner settings mapping."""
    agent = {k: v for k, v in settings.items() if k in AGENT_SETTINGS}
    search = {k: v for k, v in settings.items() if k not in AGENT_SETTINGS}
    return agent, search


def check_belief(belief: Any, source: str = "belief") -> str | None:
    """``belief`` if it names one of :data:`BELIEFS` (or is ``None``, the env's default).

    Raises:
        PlanningConfigError: For any other value.
    """
    if belief is None or (isinstance(belief, str) and belief in BELIEFS):
        return belief
    raise PlanningConfigError(
        f"{source}: belief={belief!r}; expected one of {', '.join(map(repr, BELIEFS))}: "
        "'learned' draws the hidden fields from what the model reads in the text, 'env' "
        "weights them by the env's own likelihood (a perfect-model upper bound)."
    )


def bundled_planner_settings(env_id: str | None) -> dict[str, Any]:
    """The planner settings measured for a bundled env, or ``{}``.

    ``rlagent/CustomerService-v0`` reads ``rlagent/configs/planning/CustomerService-v0.yaml``
    when it exists; ``rlagent evaluate --planner mcts`` uses them unless ``--planner-config``
    is given.

    Args:
        env_id: A registered env id (``None``: no settings).

    Returns:
        The settings (see :func:`read_planner_settings`).
    """
    if not env_id:
        return {}
    path = _BUNDLED_DIR / f"{env_id.split('/')[-1]}.yaml"
    return read_planner_settings(path) if path.is_file() else {}
