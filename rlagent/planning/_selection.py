"""Selection rules of the tree search: UCT, PUCT, progressive widening and root noise."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from rlagent.planning._tree import Node
from rlagent.planning.config import MCTSConfig
from rlagent.planning.model import PlanningStateError

__all__: list[str] = []


def set_evaluation(
    node: Node, cfg: MCTSConfig, priors: Sequence[float] | None, value: float
) -> None:
    """Store a new node's evaluation: its value and its priors.

    Priors are normalised (uniform for PUCT when the evaluator gives none) and, with progressive
    widening, the node's actions are sorted by prior.
    """
    node.v0 = float(value)
    node.pending = False
    if priors is None:
        if cfg.selection == "puct":
            node.priors = [1.0 / len(node.actions)] * len(node.actions)
    else:
        p = [float(x) for x in priors]
        if len(p) != len(node.actions):
            raise PlanningStateError(
                f"MCTS: the evaluator returned {len(p)} priors for a state with "
                f"{len(node.actions)} legal actions; priors must align with "
                "model.actions(state)."
            )
        total = sum(p)
        if not total > 0:
            p = [1.0 / len(p)] * len(p)
        elif abs(total - 1.0) > 1e-6:
            p = [x / total for x in p]
        if cfg.widening_c is not None and node.visits == 0:
            order = sorted(range(len(p)), key=lambda i: -p[i])
            node.actions = tuple(node.actions[i] for i in order)
            p = [p[i] for i in order]
        node.priors = p
    node.base_priors = node.priors


def add_dirichlet_noise(root: Node, cfg: MCTSConfig, rng: np.random.Generator) -> None:
    """Mix Dirichlet noise into the root's priors (its evaluator priors, or uniform)."""
    base = root.base_priors or [1.0 / len(root.actions)] * len(root.actions)
    noise = rng.dirichlet([cfg.dirichlet_alpha] * len(base))
    f = cfg.dirichlet_fraction
    root.priors = [(1 - f) * p + f * float(x) for p, x in zip(base, noise, strict=True)]


def width(node: Node, cfg: MCTSConfig) -> int:
    """Actions of ``node`` that progressive widening lets selection consider."""
    k = len(node.actions)
    c = cfg.widening_c
    if c is None:
        return k
    return min(k, max(1, math.ceil(c * max(node.visits, 1) ** cfg.widening_alpha)))


def select(node: Node, cfg: MCTSConfig, lo: float, hi: float) -> int:
    """Index of the action to try next at ``node``, by UCT or PUCT.

    ``lo`` and ``hi`` are the lowest and highest Q values seen in the tree, for
    ``normalize_q``; with UCT every considered action is tried once first, in order.
    """
    k = len(node.actions) if cfg.widening_c is None else width(node, cfg)
    n = node.n
    w = node.w
    if cfg.normalize_q and hi > lo:
        scale = 1.0 / (hi - lo)
    else:
        lo, scale = 0.0, 1.0
    if cfg.selection == "uct":
        tried = node.tried
        if tried < k:
            node.tried = tried + 1
            return tried
        c = cfg.uct_c
        log_n = math.log(node.visits)
        best, best_i = -math.inf, 0
        for i in range(k):
            ni = n[i]
            s = (w[i] / ni - lo) * scale + c * math.sqrt(log_n / ni)
            if s > best:
                best, best_i = s, i
        return best_i
    visits = node.visits
    pb_c = (math.log((visits + cfg.pb_c_base + 1) / cfg.pb_c_base) + cfg.pb_c_init) * (
        math.sqrt(visits) if visits > 0 else 1.0
    )
    q_unvisited = ((node.v0 + node.wsum) / (1 + visits) - lo) * scale
    p = node.priors
    best, best_i = -math.inf, 0
    for i in range(k):
        ni = n[i]
        q = (w[i] / ni - lo) * scale if ni else q_unvisited
        s = q + pb_c * p[i] / (1 + ni)
        if s > best:
            best, best_i = s, i
    return best_i
