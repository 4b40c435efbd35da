"""Monte-Carlo tree search over a sampling model, closed-loop on chance outcomes.

Every simulation walks down from the root, choosing actions with UCT or PUCT and *sampling* a
fresh transition from the model at each step. In closed-loop mode (the default) the child reached
is keyed by the sampled next state, so that a stochastic transition grows one subtree per
outcome and the statistics below an outcome are never mixed with another outcome's; in open-loop
mode children are keyed by the action only (faster to grow, wrong when the best continuation
depends on the outcome). Rewards are collected along the path, discounted, and a new leaf is
scored once by the evaluator.

If the model has a method ``key(state) -> Hashable``, children are keyed by ``key(next_state)``
instead of the state itself, and the sampled states are carried down the tree along each
simulation: this is how a belief model keys the tree by what the agent observes while each
simulation plays out one sampled hidden state (POMCP).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlagent.planning.config import MCTSConfig
from rlagent.planning.evaluators import RandomRolloutEvaluator
from rlagent.planning.model import Evaluator, Model, PlanningStateError

__all__ = ["MCTS", "SearchResult"]

# Visits an action needs before the root value backs up through it (see ``_root_value``).
_MIN_VISITS = 2


@dataclass(frozen=True)
class SearchResult:
    """What one call to :meth:`MCTS.search` found at the root.

    Attributes:
        action: The action chosen (most visited, or sampled with the configured temperature).
        actions: The root's legal actions, ``[A]``; the tuples below are aligned with it.
        visit_counts: Simulations through each root action, ``[A]``.
        q_values: Mean discounted return after each root action, ``[A]`` (``nan`` if unvisited).
        value: The search's estimate of the optimal value of the root, by a max backup
            through the tree: a node is worth the largest value among its actions tried at
            least twice; a node none of whose actions was tried twice, or a terminal one, is
            worth the mean return of the simulations that reached it (evaluator values
            included); an action is worth ``reward + discount * value`` of the outcome reached,
            averaged over its visits with each outcome weighted by how often it was reached.
            Exploratory actions therefore do not drag it down, as they do ``q_values``; it may
            come from another root action than ``action`` when their values are close. With
            ``chance="open_loop"``: the Q value of the most visited action.
        value_stderr: Standard error of ``value``, computed by the same recursion: the spread
            of the per-outcome values over an action's visits, plus each outcome's own
            variance times its squared visit frequency; a node reached once takes the pooled
            per-simulation variance of the returns at its depth. It counts sampling noise,
            not the error of an evaluator biased for ``V*`` (random rollouts value random play
            beyond the tree), nor the upward bias of taking a maximum of noisy estimates.
            ``nan`` below two visits of the most visited root action.
        simulations: Simulations run in this call.
        root_visits: Visits of the root, reused ones included.
        tree_size: Nodes in the tree after the search.
        reused: Whether the root came from the previous call's tree.
    """

    action: int
    actions: tuple[int, ...]
    visit_counts: tuple[int, ...]
    q_values: tuple[float, ...]
    value: float
    value_stderr: float
    simulations: int
    root_visits: int
    tree_size: int
    reused: bool

    def policy(self) -> dict[int, float]:
        """Visit distribution at the root, ``{action: fraction of visits}``."""
        total = sum(self.visit_counts)
        pairs = zip(self.actions, self.visit_counts, strict=True)
        return {a: (n / total if total else 0.0) for a, n in pairs}


class _Node:
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


class MCTS:
    """Monte-Carlo tree search on a sampling model.

    Args:
        model: Any object with ``actions(state)`` and ``step(state, action, rng)`` (see
            :class:`rlagent.planning.Model`); optionally ``key(state)``.
        config: Search settings; defaults to :class:`MCTSConfig` ``()``.
        evaluator: Leaf evaluator (``evaluate(state, rng) -> (priors, value)``, and
            ``evaluate_batch`` when ``config.batch_size > 1``); defaults to one uniformly random
            rollout to the end of the episode.

    Example:
        >>> import numpy as np
        >>> from rlagent.planning import MCTS, MCTSConfig
        >>> class Walk:  # reach +3 before the 4th step
        ...     def actions(self, s):
        ...         return (0, 1)
        ...     def step(self, s, a, rng):
        ...         pos, t = s
        ...         pos += 1 if a == 1 else -1
        ...         return (pos, t + 1), float(pos == 3), pos == 3 or t + 1 == 4
        >>> result = MCTS(Walk(), MCTSConfig(num_simulations=200)).search(
        ...     (0, 0), np.random.default_rng(0))
        >>> result.action
        1
    """

    def __init__(
        self,
        model: Model,
        config: MCTSConfig | None = None,
        evaluator: Evaluator | None = None,
    ) -> None:
        config = MCTSConfig() if config is None else config
        if not isinstance(config, MCTSConfig):
            raise TypeError(
                f"MCTS: config must be an MCTSConfig, got {type(config).__name__}; "
                "build one with rlagent.planning.MCTSConfig(...)."
            )
        for name in ("actions", "step"):
            if not callable(getattr(model, name, None)):
                raise PlanningStateError(
                    f"MCTS: the model ({type(model).__name__}) has no method {name}(); a model "
                    "needs actions(state) -> Sequence[int] and step(state, action, rng) -> "
                    "(next_state, reward, done)."
                )
        if evaluator is None:
            evaluator = RandomRolloutEvaluator(model, discount=config.discount)
        if config.batch_size > 1 and not callable(getattr(evaluator, "evaluate_batch", None)):
            raise PlanningStateError(
                f"MCTS: batch_size={config.batch_size} needs an evaluator with "
                f"evaluate_batch(states, rng), got {type(evaluator).__name__}; use batch_size=1."
            )
        self.model = model
        self.config = config
        self.evaluator = evaluator
        key = getattr(model, "key", None)
        self._key = key if callable(key) else None
        self._root: _Node | None = None
        self._min = math.inf
        self._max = -math.inf
        self._size = 0
        self._uids = 0
        self._crn = 0

    def reset(self) -> None:
        """Forget the tree kept for reuse (call at the start of a new episode)."""
        self._root = None
        self._min = math.inf
        self._max = -math.inf
        self._size = 0

    # ----------------------------------------------------------------------------- search
    def search(self, state: Any, rng: np.random.Generator) -> SearchResult:
        """Run ``config.num_simulations`` simulations from ``state`` and pick an action.

        Args:
            state: The root state (hashable, not terminal).
            rng: Source of every random draw of the search (model, evaluator, noise).

        Returns:
            The root statistics and the chosen action.

        Raises:
            PlanningStateError: If ``state`` has no legal actions.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError(
                f"MCTS.search: rng must be a numpy.random.Generator, got {type(rng).__name__}; "
                "pass np.random.default_rng(seed)."
            )
        cfg = self.config
        if cfg.common_random_numbers:
            self._crn = int(rng.integers(2**63))
        key = self._key(state) if self._key is not None else state
        root = self._reuse(key, state) if cfg.reuse_tree else None
        reused = root is not None
        if root is None:
            self._min, self._max, self._size = math.inf, -math.inf, 0
            root = self._new_node(key, state)
            priors, value = self.evaluator.evaluate(state, rng)
            self._set_evaluation(root, priors, value)
        else:
            root.state = state
        if cfg.dirichlet_alpha is not None and cfg.selection == "puct":
            self._add_noise(root, rng)
        self._root = root

        remaining = cfg.num_simulations
        if cfg.batch_size == 1:
            for _ in range(remaining):
                self._simulate(root, state, rng)
        else:
            while remaining > 0:
                count = min(cfg.batch_size, remaining)
                self._simulate_batch(root, state, rng, count)
                remaining -= count
        return self._result(root, rng, cfg.num_simulations, reused)

    def _reuse(self, key: Hashable, state: Any) -> _Node | None:
        old = self._root
        if old is None:
            return None
        if old.key == key:
            return old
        for children in old.children:
            if children is not None:
                node = children.get(key)
                if node is not None and not node.pending:
                    return node
        return None

    # ------------------------------------------------------------------------ tree helpers
    def _new_node(self, key: Hashable, state: Any) -> _Node:
        actions = tuple(self.model.actions(state))
        if not actions:
            raise PlanningStateError(
                f"MCTS: the model returned no legal actions for the non-terminal state {state!r}; "
                "actions(state) must be non-empty unless step() reported done=True."
            )
        self._size += 1
        self._uids += 1
        node = _Node(key, state, actions)
        node.uid = self._uids
        return node

    def _set_evaluation(self, node: _Node, priors: Sequence[float] | None, value: float) -> None:
        cfg = self.config
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

    def _add_noise(self, root: _Node, rng: np.random.Generator) -> None:
        cfg = self.config
        base = root.base_priors or [1.0 / len(root.actions)] * len(root.actions)
        noise = rng.dirichlet([cfg.dirichlet_alpha] * len(base))
        f = cfg.dirichlet_fraction
        root.priors = [(1 - f) * p + f * float(x) for p, x in zip(base, noise, strict=True)]

    def _width(self, node: _Node) -> int:
        k = len(node.actions)
        c = self.config.widening_c
        if c is None:
            return k
        return min(k, max(1, math.ceil(c * max(node.visits, 1) ** self.config.widening_alpha)))

    def _select(self, node: _Node) -> int:
        cfg = self.config
        k = len(node.actions) if cfg.widening_c is None else self._width(node)
        n = node.n
        w = node.w
        lo, hi = self._min, self._max
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

    # ------------------------------------------------------------------------ simulations
    def _descend(self, root: _Node, state: Any, rng: np.random.Generator) -> tuple[list, Any]:
        """Walk down to a leaf; return ``(path, leaf)``.

        ``path`` holds ``(node, action_index, reward)``; ``leaf`` is a float (the value of the
        leaf, already known) or a new pending ``(node, state)`` pair to evaluate.
        """
        cfg = self.config
        step = self.model.step
        keyf = self._key
        closed = cfg.chance == "closed_loop"
        max_depth = cfg.max_depth
        widen = cfg.chance_widening_c
        crn = cfg.common_random_numbers
        path = []
        node = root
        depth = 0
        while True:
            i = self._select(node)
            if widen is not None:
                bucket = node.children[i]
                if bucket and len(bucket) >= math.ceil(
                    widen * node.n[i] ** cfg.chance_widening_alpha
                ):
                    # Enough outcomes of this edge: revisit one in proportion to its arrivals.
                    child = _sample_arrival(bucket, rng)
                    reward = child.reward_sum / child.arrivals
                    child.arrivals += 1
                    child.reward_sum += reward
                    path.append((node, i, reward))
                    depth += 1
                    if child.terminal:
                        return path, 0.0
                    if child.pending:
                        return path, (child, child.state)
                    if max_depth is not None and depth >= max_depth:
                        return path, child.v0
                    node = child
                    state = child.state
                    continue
            if crn:
                # The k-th visit of every action of a node draws the same random numbers.
                step_rng = np.random.default_rng((self._crn, node.uid, node.n[i]))
            else:
                step_rng = rng
            next_state, reward, done = step(state, node.actions[i], step_rng)
            path.append((node, i, reward))
            depth += 1
            if done:
                if widen is not None:
                    self._record_terminal(node, i, next_state, reward)
                return path, 0.0
            children = node.children
            if closed:
                bucket = children[i]
                if bucket is None:
                    bucket = children[i] = {}
                k = keyf(next_state) if keyf is not None else next_state
                child = bucket.get(k)
                if child is None:
                    child = bucket[k] = self._new_node(k, next_state)
                child.arrivals += 1
                child.reward_sum += reward
                if child.pending:
                    return path, (child, next_state)
            else:
                child = children[i]
                if child is None:
                    child = children[i] = self._new_node(None, next_state)
                    return path, (child, next_state)
            if child.pending:
                return path, (child, next_state)
            if max_depth is not None and depth >= max_depth:
                return path, child.v0
            node = child
            state = next_state

    def _record_terminal(self, node: _Node, i: int, state: Any, reward: float) -> None:
        """Keep a terminal outcome as a child, so that chance widening can revisit it."""
        bucket = node.children[i]
        if bucket is None:
            bucket = node.children[i] = {}
        k = self._key(state) if self._key is not None else state
        child = bucket.get(k)
        if child is None:
            child = bucket[k] = _Node(k, state, ())
            child.terminal = True
            child.pending = False
            self._size += 1
        child.arrivals += 1
        child.reward_sum += reward

    def _backup(self, path: list, value: float) -> None:
        gamma = self.config.discount
        lo, hi = self._min, self._max
        g = value
        for node, i, reward in reversed(path):
            g = reward + gamma * g
            ni = node.n[i] + 1
            node.n[i] = ni
            wi = node.w[i] + g
            node.w[i] = wi
            node.wsq[i] += g * g
            node.wsum += g
            node.visits += 1
            q = wi / ni
            if q < lo:
                lo = q
            if q > hi:
                hi = q
        self._min, self._max = lo, hi

    def _simulate(self, root: _Node, state: Any, rng: np.random.Generator) -> None:
        path, leaf = self._descend(root, state, rng)
        if leaf.__class__ is float:
            self._backup(path, leaf)
            return
        node, leaf_state = leaf
        priors, value = self.evaluator.evaluate(leaf_state, rng)
        self._set_evaluation(node, priors, value)
        self._backup(path, node.v0)

    def _simulate_batch(
        self, root: _Node, state: Any, rng: np.random.Generator, count: int
    ) -> None:
        vl = self.config.virtual_loss
        # Virtual loss: a pending path counts as ``vl`` extra visits at the lowest Q seen.
        vl_value = self._min if math.isfinite(self._min) else 0.0
        paths = []
        pending: dict[int, tuple[_Node, Any]] = {}
        for _ in range(count):
            path, leaf = self._descend(root, state, rng)
            if leaf.__class__ is not float:
                pending.setdefault(id(leaf[0]), leaf)
            paths.append((path, leaf))
            if vl > 0:
                for node, i, _ in path:
                    node.n[i] += vl
                    node.w[i] += vl * vl_value
                    node.visits += vl
        leaves = list(pending.values())
        if leaves:
            results = self.evaluator.evaluate_batch([s for _, s in leaves], rng)
            if len(results) != len(leaves):
                raise PlanningStateError(
                    f"MCTS: evaluate_batch returned {len(results)} results for "
                    f"{len(leaves)} states; it must return one (priors, value) pair per state."
                )
            for (node, _), (priors, value) in zip(leaves, results, strict=True):
                self._set_evaluation(node, priors, value)
        for path, leaf in paths:
            if vl > 0:
                for node, i, _ in path:
                    node.n[i] -= vl
                    node.w[i] -= vl * vl_value
                    node.visits -= vl
            self._backup(path, leaf if leaf.__class__ is float else leaf[0].v0)

    # ---------------------------------------------------------------------------- result
    def _result(
        self, root: _Node, rng: np.random.Generator, simulations: int, reused: bool
    ) -> SearchResult:
        n = root.n
        q = [root.w[i] / n[i] if n[i] else math.nan for i in range(len(n))]
        best = max(range(len(n)), key=lambda i: (n[i], q[i] if n[i] else -math.inf))
        temperature = self.config.temperature
        if temperature > 0 and sum(n) > 0:
            weights = np.asarray(n, dtype=np.float64) ** (1.0 / temperature)
            chosen = int(rng.choice(len(n), p=weights / weights.sum()))
        else:
            chosen = best
        if n[best] < _MIN_VISITS:
            value, stderr = (float(q[best]) if n[best] else math.nan), math.nan
        elif self.config.chance == "closed_loop":
            value, variance = self._root_value(root)
            stderr = math.sqrt(variance)
        else:
            value, variance = _edge_mean(root, best)
            stderr = math.sqrt(variance)
        order = sorted(range(len(n)), key=lambda i: root.actions[i])
        return SearchResult(
            action=int(root.actions[chosen]),
            actions=tuple(int(root.actions[i]) for i in order),
            visit_counts=tuple(int(n[i]) for i in order),
            q_values=tuple(float(q[i]) for i in order),
            value=float(value),
            value_stderr=float(stderr),
            simulations=simulations,
            root_visits=int(root.visits),
            tree_size=self._size,
            reused=reused,
        )

    def _root_value(self, root: _Node) -> tuple[float, float]:
        """Max-backup estimate of the root's value and its variance (closed loop).

        A node is worth the largest value among its actions tried at least ``_MIN_VISITS``
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
        gamma = self.config.discount
        order: list[tuple[_Node, int, bool]] = []  # (node, depth, expanded)
        pool: dict[int, list[float]] = {}
        stack = [(root, 0)]
        while stack:
            node, depth = stack.pop()
            expanded = not node.terminal and max(node.n, default=0) >= _MIN_VISITS
            order.append((node, depth, expanded))
            if node is not root:
                a = node.arrivals
                if a >= 2:
                    _, var_of_mean = _arrival_mean(node)
                    sums = pool.setdefault(depth, [0.0, 0.0])
                    sums[0] += var_of_mean * a * (a - 1)
                    sums[1] += a - 1
            if expanded:
                for i, ni in enumerate(node.n):
                    if ni >= _MIN_VISITS:
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
                    self._action_value(node, i, values, gamma)
                    for i, ni in enumerate(node.n)
                    if ni >= _MIN_VISITS
                )
            else:
                mean, variance = _arrival_mean(node)
                if node.arrivals == 1 and not node.terminal:
                    variance = pooled.get(depth, overall)
                values[id(node)] = (mean, variance)
        return values[id(root)]

    @staticmethod
    def _action_value(
        node: _Node, i: int, values: dict[int, tuple[float, float]], gamma: float
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
            rest_w -= child.reward_sum + gamma * _arrival_sum(child)
        if not strata:
            return _edge_mean(node, i)
        if rest_n > 0:
            # Visits that ended the episode (not kept as children): their returns as sampled;
            # their own spread is bounded by the spread of the whole edge.
            spread = _edge_mean(node, i)[1] * n
            strata.append((rest_n, rest_w / rest_n, spread / rest_n))
        total = sum(s[0] for s in strata)
        mean = sum(a * m for a, m, _ in strata) / total
        between = sum(a * (m - mean) ** 2 for a, m, _ in strata)
        between = between / ((total - 1) * total) if total > 1 else 0.0
        within = sum((a / total) ** 2 * v for a, _, v in strata)
        return mean, between + within


def _arrival_sum(node: _Node) -> float:
    """Sum of the returns from ``node`` over the simulations that reached it."""
    return (node.arrivals - node.visits) * node.v0 + node.wsum


def _arrival_mean(node: _Node) -> tuple[float, float]:
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


def _edge_mean(node: _Node, i: int) -> tuple[float, float]:
    """Plain mean of the returns through edge ``i`` and the variance of that mean."""
    n = node.n[i]
    mean = node.w[i] / n
    if n < 2:
        return mean, 0.0
    return mean, max(node.wsq[i] / n - mean * mean, 0.0) / (n - 1)


def _sample_arrival(bucket: dict, rng: np.random.Generator) -> _Node:
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
