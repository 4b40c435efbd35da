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

This module holds the search loop (:class:`MCTS`) and its result; the tree's nodes and the
values read off them are in ``_tree``, the selection rules (UCT, PUCT, widening, root noise) in
``_selection``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np

from rlagent.planning._selection import add_dirichlet_noise, select, set_evaluation
from rlagent.planning._tree import (
    MIN_VISITS,
    Node,
    edge_mean,
    root_value,
    sample_arrival,
)
from rlagent.planning.config import MCTSConfig
from rlagent.planning.evaluators import RandomRolloutEvaluator
from rlagent.planning.model import Evaluator, Model, PlanningStateError

__all__ = ["MCTS", "SearchResult"]


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
        self._root: Node | None = None
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
            set_evaluation(root, cfg, priors, value)
        else:
            root.state = state
        if cfg.dirichlet_alpha is not None and cfg.selection == "puct":
            add_dirichlet_noise(root, cfg, rng)
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

    def _reuse(self, key: Hashable, state: Any) -> Node | None:
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
    def _new_node(self, key: Hashable, state: Any) -> Node:
        actions = tuple(self.model.actions(state))
        if not actions:
            raise PlanningStateError(
                f"MCTS: the model returned no legal actions for the non-terminal state {state!r}; "
                "actions(state) must be non-empty unless step() reported done=True."
            )
        self._size += 1
        self._uids += 1
        node = Node(key, state, actions)
        node.uid = self._uids
        return node

    # ------------------------------------------------------------------------ simulations
    def _descend(self, root: Node, state: Any, rng: np.random.Generator) -> tuple[list, Any]:
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
            i = select(node, cfg, self._min, self._max)
            if widen is not None:
                bucket = node.children[i]
                if bucket and len(bucket) >= math.ceil(
                    widen * node.n[i] ** cfg.chance_widening_alpha
                ):
                    # Enough outcomes of this edge: revisit one in proportion to its arrivals.
                    child = sample_arrival(bucket, rng)
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

    def _record_terminal(self, node: Node, i: int, state: Any, reward: float) -> None:
        """Keep a terminal outcome as a child, so that chance widening can revisit it."""
        bucket = node.children[i]
        if bucket is None:
            bucket = node.children[i] = {}
        k = self._key(state) if self._key is not None else state
        child = bucket.get(k)
        if child is None:
            child = bucket[k] = Node(k, state, ())
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

    def _simulate(self, root: Node, state: Any, rng: np.random.Generator) -> None:
        path, leaf = self._descend(root, state, rng)
        if leaf.__class__ is float:
            self._backup(path, leaf)
            return
        node, leaf_state = leaf
        priors, value = self.evaluator.evaluate(leaf_state, rng)
        set_evaluation(node, self.config, priors, value)
        self._backup(path, node.v0)

    def _simulate_batch(self, root: Node, state: Any, rng: np.random.Generator, count: int) -> None:
        vl = self.config.virtual_loss
        # Virtual loss: a pending path counts as ``vl`` extra visits at the lowest Q seen.
        vl_value = self._min if math.isfinite(self._min) else 0.0
        paths = []
        pending: dict[int, tuple[Node, Any]] = {}
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
                set_evaluation(node, self.config, priors, value)
        for path, leaf in paths:
            if vl > 0:
                for node, i, _ in path:
                    node.n[i] -= vl
                    node.w[i] -= vl * vl_value
                    node.visits -= vl
            self._backup(path, leaf if leaf.__class__ is float else leaf[0].v0)

    # ---------------------------------------------------------------------------- result
    def _result(
        self, root: Node, rng: np.random.Generator, simulations: int, reused: bool
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
        if n[best] < MIN_VISITS:
            value, stderr = (float(q[best]) if n[best] else math.nan), math.nan
        elif self.config.chance == "closed_loop":
            value, variance = root_value(root, self.config.discount)
            stderr = math.sqrt(variance)
        else:
            value, variance = edge_mean(root, best)
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
