"""The search tree: node statistics and the values and variances read off them.

A :class:`Node` keeps per-action edge sums (visits ``n``, return sums ``w`` and ``wsq``) and,
in closed-loop search, one child per sampled outcome in ``children[i]`` (a dict keyed by the
outcome's key). :func:`root_value` backs the root's value up through the tree for
:class:`rlagent.planning.SearchResult` ``.value`` and ``.value_stderr``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np

__all__: list[str] = []

# Visits an action needs before the root value backs up through it (see ``root_value``).
MIN_VISITS = 2


class Node:
    """Statistics of one tree node; ``n``/``w``/``wsq`` are per-action edge sums."""

    __slots__ = (
        "key",
        "state",
        "actions",
        "priors",
        "base_priors",
        "n",
        "w",
        "wsq",
        "children",
        "visits",
        "wsum",
        "v0",
        "tried",
        "pending",
        "arrivals",
        "reward_sum",
        "terminal",
        "uid",
    )

    def __init__(self, key: Hashable, state: Any, actions: tuple[int, ...]) -> None:
        k = len(actions)
        self.key = key
        self.state = state
        self.actions = actions
        self.priors: list[float] | None = None
        self.base_priors: list[float] | None = None
        self.n = [0] * k
        self.w = [0.0] * k
        self.wsq = [0.0] * k
        self.children: list[Any] = [None] * k
        self.visits = 0
        self.wsum = 0.0
        self.v0 = 0.0
        self.tried = 0
        self.pending = True
        self.arrivals = 0
        self.reward_sum = 0.0
        self.terminal = False
        self.uid = 0


def root_value(root: Node, gamma: float) -> tuple[float, float]:
    """Max-backup estimate of the root's value and its variance (closed loop).

    A node is worth the largest value among its actions tried at least ``MIN_VISITS``
    times (the Bellman backup); a node none of whose actions was tried that often, or a
    terminal one, is worth the mean return of the simulations that reached it (evaluator
    values included). An action is worth the mean of ``reward + discount * value`` over
    the outcomes it reached, each weighted by how often it was reached (a stratified mean;
    visits that ended the episode keep their sampled returns). Variances follow the same
    recursion: the spread of the per-outcome values over the visits, plus each outcome's
    own variance times its squared visit frequency. A node reached once has no sample
    variance of its own; it takes the pooled per-simulation variance of the returns from
    the nodes at the same depth that were reached at least twice.

    Two passes over the nodes the backup uses: the first (pre-order) collects them and
    pools variances per depth, the second (children first) computes the values.
    Iterative, so that deep trees do not hit the recursion limit.
    """
    order: list[tuple[Node, int, bool]] = []  # (node, depth, expanded)
    pool: dict[int, list[float]] = {}
    stack = [(root, 0)]
    while stack:
        node, depth = stack.pop()
        expanded = not node.terminal and max(node.n, default=0) >= MIN_VISITS
        order.append((node, depth, expanded))
        if node is not root:
            a = node.arrivals
            if a >= 2:
                _, var_of_mean = arrival_mean(node)
                sums = pool.setdefault(depth, [0.0, 0.0])
                sums[0] += var_of_mean * a * (a - 1)
                sums[1] += a - 1
        if expanded:
            for i, ni in enumerate(node.n):
                if ni >= MIN_VISITS:
                    for child in (node.children[i] or {}).values():
                        if child.arrivals:
                            stack.append((child, depth + 1))
    total = [sum(x[0] for x in pool.values()), sum(x[1] for x in pool.values())]
    pooled = {d: x[0] / x[1] for d, x in pool.items() if x[1] > 0}
    overall = total[0] / total[1] if total[1] > 0 else 0.0
    values: dict[int, tuple[float, float]] = {}
    for node, depth, expanded in reversed(order):
        if expanded:
            values[id(node)] = max(
                action_value(node, i, values, gamma)
                for i, ni in enumerate(node.n)
                if ni >= MIN_VISITS
            )
        else:
            mean, variance = arrival_mean(node)
            if node.arrivals == 1 and not node.terminal:
                variance = pooled.get(depth, overall)
            values[id(node)] = (mean, variance)
    return values[id(root)]


def action_value(
    node: Node, i: int, values: dict[int, tuple[float, float]], gamma: float
) -> tuple[float, float]:
    """Stratified mean and variance of ``reward + gamma * value(outcome)`` over edge ``i``."""
    n = node.n[i]
    strata = []
    rest_n, rest_w = n, node.w[i]
    for child in (node.children[i] or {}).values():
        a = child.arrivals
        if a == 0:
            continue
        value, variance = values[id(child)]
        strata.append((a, child.reward_sum / a + gamma * value, gamma * gamma * variance))
        rest_n -= a
        rest_w -= child.reward_sum + gamma * arrival_sum(child)
    if not strata:
        return edge_mean(node, i)
    if rest_n > 0:
        # Visits that ended the episode (not kept as children): their returns as sampled;
        # their own spread is bounded by the spread of the whole edge.
        spread = edge_mean(node, i)[1] * n
        strata.append((rest_n, rest_w / rest_n, spread / rest_n))
    total = sum(s[0] for s in strata)
    mean = sum(a * m for a, m, _ in strata) / total
    between = sum(a * (m - mean) ** 2 for a, m, _ in strata)
    between = between / ((total - 1) * total) if total > 1 else 0.0
    within = sum((a / total) ** 2 * v for a, _, v in strata)
    return mean, between + within


def arrival_sum(node: Node) -> float:
    """Sum of the returns from ``node`` over the simulations that reached it."""
    return (node.arrivals - node.visits) * node.v0 + node.wsum


def arrival_mean(node: Node) -> tuple[float, float]:
    """Mean return from ``node`` over the simulations that reached it, and its variance."""
    a = node.arrivals
    if a == 0:
        return node.v0, 0.0
    stopped = a - node.visits  # simulations that stopped here and took the evaluator's value
    mean = (stopped * node.v0 + node.wsum) / a
    if a < 2:
        return mean, 0.0
    square = stopped * node.v0 * node.v0 + sum(node.wsq)
    return mean, max(square / a - mean * mean, 0.0) / (a - 1)


def edge_mean(node: Node, i: int) -> tuple[float, float]:
    """Plain mean of the returns through edge ``i`` and the variance of that mean."""
    n = node.n[i]
    mean = node.w[i] / n
    if n < 2:
        return mean, 0.0
    return mean, max(node.wsq[i] / n - mean * mean, 0.0) / (n - 1)


def sample_arrival(bucket: dict, rng: np.random.Generator) -> Node:
    """A child of ``bucket`` drawn with probability proportional to its arrivals."""
    total = 0
    for child in bucket.values():
        total += child.arrivals
    u = rng.random() * total
    for child in bucket.values():
        u -= child.arrivals
        if u < 0:
            return child
    return child
