"""``rlagent bench mcts``: simulations/s and regret against budget, beside OpenSpiel's MCTSBot.

Both searches plan on the same random finite-horizon stochastic MDP
(:func:`rlagent.planning.random_mdp`: ``S`` states, ``A`` actions, ``K`` chance outcomes,
horizon ``H``) with the same leaf evaluator: one uniformly random rollout to the end of the
episode, drawn from the MDP's own tables by the same Python function. OpenSpiel sees the MDP
as a one-player Python game with explicit chance nodes whose terminal return is the sum of
the rewards (MCTSBot needs terminal rewards); its solver is off, as rlagent has none.

* Speed: median simulations/s over ``repeats`` searches of ``speed_simulations`` each.
* Quality: mean relative simple regret ``(V* - Q*(chosen)) / V*`` (exact values by backward
  induction) and the fraction of searches within 1%, at each budget, over ``num_mdps`` MDPs
  and ``search_seeds`` searches each; and rlagent's regret minus OpenSpiel's, paired by MDP
  (both planners search the same MDPs with the same seeds), with its standard error over
  MDPs.

By default rlagent runs twice: with its default :class:`~rlagent.planning.MCTSConfig` and
with the plain UCT that OpenSpiel uses (same ``uct_c``, no Q normalisation), so that speed and
regret compare like with like. The default normalises Q by the range of Q values in the tree,
which on these MDPs (returns summed over 6 steps) is about 4: its ``uct_c=1`` explores about
twice as much as OpenSpiel's ``uct_c=2`` on raw returns.
"""

from __future__ import annotations

import dataclasses
import functools
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlagent.planning import MCTS, MCTSConfig, RandomRolloutEvaluator, TabularMDP, random_mdp

__all__ = ["format_mcts_bench", "run_mcts_bench"]

_INSTALL_HINT = "pip install rlagent[planning]  (installs open_spiel)"


def _openspiel_game(mdp: TabularMDP) -> Any:
    """The MDP as an OpenSpiel Python game (chance nodes, terminal return = sum of rewards)."""
    import pyspiel

    horizon = int(mdp.horizon)
    num_actions, num_outcomes = mdp.num_actions, mdp.next_states.shape[2]
    game_type = pyspiel.GameType(
        short_name="rlagent_tabular_mdp",
        long_name="rlagent tabular MDP",
        dynamics=pyspiel.GameType.Dynamics.SEQUENTIAL,
        chance_mode=pyspiel.GameType.ChanceMode.EXPLICIT_STOCHASTIC,
        information=pyspiel.GameType.Information.PERFECT_INFORMATION,
        utility=pyspiel.GameType.Utility.GENERAL_SUM,
        reward_model=pyspiel.GameType.RewardModel.TERMINAL,
        max_num_players=1,
        min_num_players=1,
        provides_information_state_string=False,
        provides_information_state_tensor=False,
        provides_observation_string=False,
        provides_observation_tensor=False,
        parameter_specification={},
    )
    game_info = pyspiel.GameInfo(
        num_distinct_actions=num_actions,
        max_chance_outcomes=num_outcomes,
        num_players=1,
        min_utility=0.0,
        max_utility=float(horizon * max(1.0, float(mdp.rewards.max()))),
        utility_sum=None,
        max_game_length=2 * horizon,
    )
    probs = mdp.probs.tolist()
    nexts = mdp.next_states.tolist()
    rewards = mdp.rewards.tolist()
    legal = list(range(num_actions))

    class _State(pyspiel.State):
        def __init__(self, game: Any) -> None:
            super().__init__(game)
            self.t = 0
            self.s = mdp.initial_state
            self.pending = -1
            self.total = 0.0

        def current_player(self) -> int:
            if self.t >= horizon:
                return pyspiel.PlayerId.TERMINAL
            if self.pending >= 0:
                return pyspiel.PlayerId.CHANCE
            return 0

        def _legal_actions(self, player: int) -> list[int]:
            return legal

        def chance_outcomes(self) -> list[tuple[int, float]]:
            return list(enumerate(probs[self.s][self.pending]))

        def _apply_action(self, action: int) -> None:
            if self.pending >= 0:
                self.total += rewards[self.s][self.pending][action]
                self.s = nexts[self.s][self.pending][action]
                self.pending = -1
                self.t += 1
            else:
                self.pending = action

        def _action_to_string(self, player: int, action: int) -> str:
            return str(action)

        def is_terminal(self) -> bool:
            return self.t >= horizon

        def returns(self) -> list[float]:
            return [self.total]

        def __str__(self) -> str:
            return f"t={self.t} s={self.s} pending={self.pending}"

    class _Game(pyspiel.Game):
        def __init__(self, params: Any = None) -> None:
            super().__init__(game_type, game_info, params or {})

        def new_initial_state(self) -> _State:
            return _State(self)

    return _Game()


def _openspiel_evaluator(mdp: TabularMDP, rollout: RandomRolloutEvaluator, rng: Any) -> Any:
    """OpenSpiel Evaluator running rlagent's rollout from the MDP state a game state stands for."""
    from open_spiel.python.algorithms import mcts as os_mcts

    class _Evaluator(os_mcts.Evaluator):
        def evaluate(self, state: Any) -> np.ndarray:
            if state.is_terminal():
                return np.array([state.total])
            planning_state = (state.t, state.s)
            total = state.total
            if state.pending >= 0:
                planning_state, reward, done = mdp.step(planning_state, state.pending, rng)
                total += reward
                if done:
                    return np.array([total])
            return np.array([total + rollout.evaluate(planning_state, rng)[1]])

        def prior(self, state: Any) -> list[tuple[int, float]]:
            if state.is_chance_node():
                return state.chance_outcomes()
            legal = state.legal_actions(state.current_player())
            return [(a, 1.0 / len(legal)) for a in legal]

    return _Evaluator()


def _rlagent_search(mdp: TabularMDP, config: MCTSConfig, seed: int) -> tuple[int, float]:
    search = MCTS(mdp, config, RandomRolloutEvaluator(mdp))
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    action = search.search(mdp.initial, rng).action
    return action, time.perf_counter() - start


def _openspiel_search(mdp: TabularMDP, simulations: int, uct_c: float, seed: int) -> tuple:
    from open_spiel.python.algorithms import mcts as os_mcts

    game = _openspiel_game(mdp)
    rng = np.random.default_rng(seed)
    bot = os_mcts.MCTSBot(
        game,
        uct_c=uct_c,
        max_simulations=simulations,
        evaluator=_openspiel_evaluator(mdp, RandomRolloutEvaluator(mdp), rng),
        solve=False,
        random_state=np.random.RandomState(seed),
    )
    state = game.new_initial_state()
    start = time.perf_counter()
    action = bot.step(state)
    return int(action), time.perf_counter() - start


def run_mcts_bench(
    *,
    quick: bool = False,
    num_states: int = 20,
    num_actions: int = 4,
    num_outcomes: int = 3,
    horizon: int = 6,
    budgets: Sequence[int] = (100, 300, 1000, 2000),
    num_mdps: int = 100,
    search_seeds: int = 10,
    speed_simulations: int = 2000,
    repeats: int = 5,
    uct_c: float = 2.0,
    openspiel: bool = True,
    seed: int = 0,
    rlagent_configs: Mapping[str, MCTSConfig] | None = None,
) -> dict[str, Any]:
    """Measure rlagent's MCTS against OpenSpiel's MCTSBot on random stochastic MDPs.

    Args:
        quick: Small budgets (a smoke test of a few seconds); overrides the sizes below.
        num_states: ``S`` of the random MDP.
        num_actions: ``A``.
        num_outcomes: ``K`` chance outcomes per (state, action).
        horizon: ``H`` steps per episode.
        budgets: Simulation budgets at which regret is measured.
        num_mdps: Random MDPs (seeds ``seed .. seed + num_mdps - 1``) per budget.
        search_seeds: Searches per MDP and budget (different seeds), averaged.
        speed_simulations: Simulations per timed search.
        repeats: Timed searches (the median is reported).
        uct_c: UCT constant of OpenSpiel and of rlagent's matched plain-UCT run.
        openspiel: Include OpenSpiel (skipped with a note when it is not installed).
        seed: Base seed of the MDPs and searches.
        rlagent_configs: rlagent settings to measure, ``{name: MCTSConfig}`` (their
            ``num_simulations`` is replaced by each budget); ``None``: ``"rlagent"`` (the
            default ``MCTSConfig()``) and ``"rlagent_plain_uct"`` (``uct_c=uct_c,
            normalize_q=False``, OpenSpiel's rule).

    Returns:
        A JSON-ready dict: ``setup``; ``speed`` (``{name: simulations/s}``); ``speedup``
        (rlagent default and matched UCT over OpenSpiel); ``regret`` (``{name: [{"simulations",
        "mean_relative_regret", "stderr", "within_1pct"}, ...]}``: the mean over MDPs of each
        MDP's mean over its search seeds, the standard error of that mean over MDPs, and the
        fraction of all searches within 1% of ``V*``); ``regret_vs_openspiel`` (``{name:
        [{"simulations", "mean_difference", "stderr"}, ...]}``: rlagent's regret minus
        OpenSpiel's, paired by MDP (same MDPs and search seeds), mean and standard error over
        MDPs; negative is better; empty without OpenSpiel); ``notes``.
    """
    if quick:
        budgets, num_mdps, search_seeds, speed_simulations, repeats = (50, 200), 3, 1, 300, 2
    budgets = tuple(int(b) for b in budgets)
    if rlagent_configs is None:
        rlagent_configs = {
            "rlagent": MCTSConfig(),
            "rlagent_plain_uct": MCTSConfig(uct_c=uct_c, normalize_q=False),
        }
    configs = {
        name: functools.partial(dataclasses.replace, config)
        for name, config in rlagent_configs.items()
    }
    notes: list[str] = []
    use_openspiel = openspiel
    if use_openspiel:
        try:
            import pyspiel  # noqa: F401
            from open_spiel.python.algorithms import mcts  # noqa: F401
        except ImportError:
            use_openspiel = False
            notes.append(f"OpenSpiel not installed: {_INSTALL_HINT}")

    def make_mdp(i: int) -> TabularMDP:
        return random_mdp(
            np.random.default_rng(seed + i),
            num_states=num_states,
            num_actions=num_actions,
            num_outcomes=num_outcomes,
            horizon=horizon,
        )

    speed: dict[str, float] = {}
    speed_mdp = make_mdp(0)
    for name, make in configs.items():
        times = [
            _rlagent_search(speed_mdp, make(num_simulations=speed_simulations), seed + r)[1]
            for r in range(repeats)
        ]
        speed[name] = speed_simulations / statistics.median(times)
    if use_openspiel:
        times = [
            _openspiel_search(speed_mdp, speed_simulations, uct_c, seed + r)[1]
            for r in range(repeats)
        ]
        speed["openspiel"] = speed_simulations / statistics.median(times)

    mdps = [make_mdp(i) for i in range(num_mdps)]
    root_q = [m.root_q() for m in mdps]
    # per_mdp[name][budget]: mean relative regret of each MDP over its search seeds, [num_mdps]
    per_mdp: dict[str, dict[int, np.ndarray]] = {name: {} for name in speed}
    within: dict[str, dict[int, float]] = {name: {} for name in speed}
    for budget in budgets:
        for name in per_mdp:
            rel = np.zeros((num_mdps, search_seeds))
            for i, (mdp, q) in enumerate(zip(mdps, root_q, strict=True)):
                for r in range(search_seeds):
                    search_seed = seed + 1000 + i + 100_000 * r
                    if name == "openspiel":
                        action, _ = _openspiel_search(mdp, budget, uct_c, search_seed)
                    else:
                        action, _ = _rlagent_search(
                            mdp, configs[name](num_simulations=budget), search_seed
                        )
                    rel[i, r] = (q.max() - q[action]) / q.max()
            per_mdp[name][budget] = rel.mean(axis=1)
            within[name][budget] = float(np.mean(rel <= 0.01))
    regret = {
        name: [
            {
                "simulations": b,
                "mean_relative_regret": float(per_mdp[name][b].mean()),
                "stderr": _stderr(per_mdp[name][b]),
                "within_1pct": within[name][b],
            }
            for b in budgets
        ]
        for name in per_mdp
    }
    # Paired by MDP (same MDPs, same search seeds): rlagent minus OpenSpiel; < 0 is better.
    paired: dict[str, list[dict[str, float]]] = {}
    if "openspiel" in per_mdp:
        for name in configs:
            paired[name] = []
            for b in budgets:
                diff = per_mdp[name][b] - per_mdp["openspiel"][b]
                paired[name].append(
                    {
                        "simulations": b,
                        "mean_difference": float(diff.mean()),
                        "stderr": _stderr(diff),
                    }
                )
    speedup = {}
    if "openspiel" in speed:
        speedup = {name: speed[name] / speed["openspiel"] for name in configs}
    return {
        "setup": {
            "num_states": num_states,
            "num_actions": num_actions,
            "num_outcomes": num_outcomes,
            "horizon": horizon,
            "num_mdps": num_mdps,
            "search_seeds": search_seeds,
            "speed_simulations": speed_simulations,
            "repeats": repeats,
            "uct_c": uct_c,
            "evaluator": "one uniformly random rollout to the end of the episode",
            "rlagent_configs": {
                name: {k: v for k, v in dataclasses.asdict(c).items() if k != "num_simulations"}
                for name, c in rlagent_configs.items()
            },
            "seed": seed,
        },
        "speed": speed,
        "speedup": speedup,
        "regret": regret,
        "regret_vs_openspiel": paired,
        "notes": notes,
    }


def _stderr(values: np.ndarray) -> float:
    """Standard error of the mean of ``values`` (0 for fewer than two)."""
    if len(values) < 2:
        return 0.0
    return float(np.std(values, ddof=1) / np.sqrt(len(values)))


def format_mcts_bench(result: dict[str, Any]) -> str:
    """A short human-readable table of :func:`run_mcts_bench`'s result."""
    setup = result["setup"]
    lines = [
        f"MCTS on random stochastic MDPs: S={setup['num_states']} A={setup['num_actions']} "
        f"K={setup['num_outcomes']} H={setup['horizon']}, evaluator: {setup['evaluator']}",
        "simulations/s (median of "
        f"{setup['repeats']} searches of {setup['speed_simulations']} simulations):",
    ]
    for name, value in result["speed"].items():
        lines.append(f"  {name:<20} {value:>12,.0f}")
    for name, value in result["speedup"].items():
        lines.append(f"  speedup {name} / openspiel: {value:.2f}x")
    lines.append(
        "mean relative regret / fraction within 1% "
        f"({setup['num_mdps']} MDPs x {setup['search_seeds']} searches):"
    )
    names = list(result["regret"])
    lines.append("  simulations " + "".join(f"{n:>24}" for n in names))
    rows = zip(*(result["regret"][n] for n in names), strict=True)
    for row in rows:
        cells = "".join(
            f"{r['mean_relative_regret']:>15.4f} / {r['within_1pct']:>4.2f}" for r in row
        )
        lines.append(f"  {row[0]['simulations']:>11} {cells}")
    paired = result.get("regret_vs_openspiel") or {}
    if paired:
        lines.append("regret minus OpenSpiel's, paired by MDP (mean +- standard error):")
        names = list(paired)
        lines.append("  simulations " + "".join(f"{n:>24}" for n in names))
        for row in zip(*(paired[n] for n in names), strict=True):
            cells = "".join(f"{r['mean_difference']:>+14.4f} +- {r['stderr']:.4f}" for r in row)
            lines.append(f"  {row[0]['simulations']:>11} {cells}")
    lines.extend(result["notes"])
    return "\n".join(lines)
