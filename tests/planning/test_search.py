"""Known-answer tests of the search core against exact solutions of tabular MDPs."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from rlagent.planning import (
    MCTS,
    ConstantEvaluator,
    ExactValueEvaluator,
    MCTSConfig,
    PlanningConfigError,
    PlanningStateError,
    RandomRolloutEvaluator,
    branching_mdp,
    lucky_outcome_mdp,
    random_mdp,
)

SEEDS = range(20)


def _relative_regret(mdp, action):
    q = mdp.root_q()
    return float((q.max() - q[action]) / q.max())


def test_random_mdps_simple_regret_at_2000_simulations():
    regrets = []
    for seed in SEEDS:
        mdp = random_mdp(np.random.default_rng(seed))  # S=20, A=4, K=3, H=6
        result = MCTS(mdp, MCTSConfig(num_simulations=2000)).search(
            mdp.initial, np.random.default_rng(1000 + seed)
        )
        regrets.append(_relative_regret(mdp, result.action))
    regrets = np.asarray(regrets)
    assert regrets.mean() <= 0.005
    assert (regrets <= 0.01).mean() >= 0.9


def test_depth_one_search_with_exact_leaf_values_is_argmax_q_star():
    for seed in SEEDS:
        mdp = random_mdp(np.random.default_rng(seed))
        config = MCTSConfig(num_simulations=20_000, max_depth=1)
        result = MCTS(mdp, config, ExactValueEvaluator(mdp)).search(
            mdp.initial, np.random.default_rng(seed)
        )
        assert result.action == int(np.argmax(mdp.root_q()))


def test_root_value_within_three_standard_errors_of_v_star():
    # Depth 1 with exact leaf values: Q estimates are unbiased sample means of r + V*(s').
    inside = 0
    for seed in SEEDS:
        mdp = random_mdp(np.random.default_rng(seed))
        config = MCTSConfig(num_simulations=2000, max_depth=1)
        result = MCTS(mdp, config, ExactValueEvaluator(mdp)).search(
            mdp.initial, np.random.default_rng(seed)
        )
        v_star = mdp.root_q().max()
        inside += abs(result.value - v_star) <= 3 * result.value_stderr
    assert inside >= 19


def _root_value_errors(evaluator_for, runs, simulations=2000):
    """``value - V*`` and ``value_stderr`` of 20 MDPs x ``runs`` search seeds, ``[runs * 20]``."""
    errors, stderrs = [], []
    for run in range(runs):
        for seed in SEEDS:
            mdp = random_mdp(np.random.default_rng(seed))
            search = MCTS(mdp, MCTSConfig(num_simulations=simulations), evaluator_for(mdp))
            result = search.search(mdp.initial, np.random.default_rng(1000 + seed + 100_000 * run))
            errors.append(result.value - mdp.root_q().max())
            stderrs.append(result.value_stderr)
    return np.asarray(errors), np.asarray(stderrs)


def test_full_depth_root_value_within_three_standard_errors_of_v_star():
    # Full-depth search with exact leaf values: the max backup converges to V*. Measured with
    # 6 search seeds per MDP: 100% of 120 within 3 standard errors, z median -0.71, std 0.80.
    errors, stderrs = _root_value_errors(ExactValueEvaluator, runs=3)
    assert np.all(stderrs > 0)
    assert np.mean(np.abs(errors) <= 3 * stderrs) >= 0.95
    z = errors / stderrs
    assert np.std(z) <= 1.2  # the standard error is not too small for the error it reports


def test_root_value_with_random_rollouts_estimates_random_play_below_v_star():
    # Rollouts value uniformly random play beyond the tree, below V*: at 2,000 simulations the
    # value is below V* on every MDP (measured 120/120, mean -0.29, 44% within 3 standard
    # errors), and the gap shrinks as the tree grows towards the horizon.
    errors, _ = _root_value_errors(lambda mdp: None, runs=1)
    assert np.all(errors < 0)
    errors_500, _ = _root_value_errors(lambda mdp: None, runs=1, simulations=500)
    assert np.mean(errors) > np.mean(errors_500)


def test_root_value_is_a_max_backup_over_actions_tried_twice():
    class TwoSteps:  # action 0 then (1.0 or 0.0), or action 1 paying 0.6: V* = 1
        def actions(self, state):
            return (0, 1)

        def step(self, state, action, rng):
            if state == "root":
                return ("after0", 0.0, False) if action == 0 else ("end", 0.6, True)
            return "end", 1.0 - action, True

    result = MCTS(TwoSteps(), MCTSConfig(num_simulations=200)).search(
        "root", np.random.default_rng(0)
    )
    assert result.action == 0
    assert result.q_values[0] < 1.0  # the mean return includes the 0.0 branch tried below
    assert result.value == 1.0
    assert result.value_stderr == 0.0  # deterministic: no sampling noise


def test_value_stderr_of_a_single_chance_step_is_the_sample_standard_error():
    class Coin:  # one action, pays 1 with probability 0.3, then ends
        def actions(self, state):
            return (0,)

        def step(self, state, action, rng):
            return 1, float(rng.random() < 0.3), True

    result = MCTS(Coin(), MCTSConfig(num_simulations=400)).search(0, np.random.default_rng(0))
    p = result.q_values[0]
    assert result.value == pytest.approx(p)
    assert result.value_stderr == pytest.approx(math.sqrt(p * (1 - p) / 399))


def test_discounted_infinite_horizon_matches_value_iteration():
    regrets = []
    for seed in SEEDS:
        mdp = random_mdp(np.random.default_rng(seed), horizon=None, discount=0.8)
        config = MCTSConfig(num_simulations=2000, discount=0.8)
        evaluator = RandomRolloutEvaluator(mdp, discount=0.8, max_steps=20)
        result = MCTS(mdp, config, evaluator).search(mdp.initial, np.random.default_rng(seed))
        regrets.append(_relative_regret(mdp, result.action))
    regrets = np.asarray(regrets)
    assert regrets.mean() <= 0.005
    assert (regrets <= 0.01).mean() >= 0.9


def test_discounted_finite_horizon_values_match_backward_induction():
    mdp = random_mdp(np.random.default_rng(3), discount=0.9)
    config = MCTSConfig(num_simulations=20_000, max_depth=1, discount=0.9)
    result = MCTS(mdp, config, ExactValueEvaluator(mdp)).search(
        mdp.initial, np.random.default_rng(0)
    )
    q = mdp.root_q()
    assert result.action == int(q.argmax())
    assert result.value == pytest.approx(q.max(), abs=4 * result.value_stderr)


@pytest.mark.parametrize(
    ("make_mdp", "optimal"), [(branching_mdp, 0), (lucky_outcome_mdp, 1)], ids=["branch", "lucky"]
)
def test_adversarial_two_step_mdps_default_search_is_optimal(make_mdp, optimal):
    mdp = make_mdp()
    chosen = [
        MCTS(mdp, MCTSConfig(num_simulations=300)).search(mdp.initial, np.random.default_rng(s))
        for s in range(100)
    ]
    assert np.mean([r.action == optimal for r in chosen]) >= 0.95


def test_open_loop_fails_where_the_second_action_depends_on_the_outcome():
    mdp = branching_mdp()
    config = MCTSConfig(num_simulations=300, chance="open_loop")
    chosen = [MCTS(mdp, config).search(mdp.initial, np.random.default_rng(s)) for s in range(50)]
    assert np.mean([r.action == 0 for r in chosen]) <= 0.1


def test_search_is_deterministic_given_the_rng():
    mdp = random_mdp(np.random.default_rng(0))
    config = MCTSConfig(num_simulations=300, selection="puct", dirichlet_alpha=0.3)
    a = MCTS(mdp, config).search(mdp.initial, np.random.default_rng(5))
    b = MCTS(mdp, config).search(mdp.initial, np.random.default_rng(5))
    assert a == b


def test_result_fields_are_consistent():
    mdp = random_mdp(np.random.default_rng(1))
    result = MCTS(mdp, MCTSConfig(num_simulations=500)).search(
        mdp.initial, np.random.default_rng(0)
    )
    assert result.actions == (0, 1, 2, 3)
    assert sum(result.visit_counts) == 500 == result.root_visits == result.simulations
    best = int(np.argmax(result.visit_counts))
    assert result.action == result.actions[best]
    # The value is a max backup through the tree: above the plain mean of the returns through
    # the chosen action, which includes exploration below it (V* = 4.55).
    assert result.q_values[best] < result.value <= 4.55 + 3 * result.value_stderr
    assert result.value_stderr > 0
    assert math.isclose(sum(result.policy().values()), 1.0)
    assert result.tree_size > 1 and not result.reused


def test_tree_reuse_keeps_the_realised_subtree():
    mdp = random_mdp(np.random.default_rng(2))
    search = MCTS(mdp, MCTSConfig(num_simulations=400, reuse_tree=True))
    rng = np.random.default_rng(0)
    first = search.search(mdp.initial, rng)
    next_state, _, _ = mdp.step(mdp.initial, first.action, rng)
    second = search.search(next_state, rng)
    assert second.reused
    assert second.root_visits > 400
    search.reset()
    assert not search.search(next_state, rng).reused


def test_unknown_state_is_not_reused():
    mdp = random_mdp(np.random.default_rng(2))
    search = MCTS(mdp, MCTSConfig(num_simulations=50, reuse_tree=True))
    rng = np.random.default_rng(0)
    search.search(mdp.initial, rng)
    assert not search.search((5, 19), rng).reused


class _PriorEvaluator:
    """Uniform rollouts' values, priors concentrated on one action, batched."""

    def __init__(self, mdp, favourite):
        self.rollout = RandomRolloutEvaluator(mdp)
        self.favourite = favourite
        self.batch_sizes = []

    def evaluate(self, state, rng):
        priors = [0.01] * 4
        priors[self.favourite] = 0.97
        return priors, self.rollout.evaluate(state, rng)[1]

    def evaluate_batch(self, states, rng):
        self.batch_sizes.append(len(states))
        return [self.evaluate(s, rng) for s in states]


def test_puct_follows_priors_with_a_small_budget():
    mdp = random_mdp(np.random.default_rng(4))
    best = int(mdp.root_q().argmax())
    evaluator = _PriorEvaluator(mdp, best)
    config = MCTSConfig(num_simulations=30, selection="puct")
    result = MCTS(mdp, config, evaluator).search(mdp.initial, np.random.default_rng(0))
    assert result.action == best


def test_batched_search_with_virtual_loss_keeps_quality():
    regrets = []
    sizes = []
    for seed in range(10):
        mdp = random_mdp(np.random.default_rng(seed))
        evaluator = _PriorEvaluator(mdp, 0)
        evaluator.evaluate = lambda s, rng, ev=evaluator: (None, ev.rollout.evaluate(s, rng)[1])
        config = MCTSConfig(num_simulations=2000, batch_size=16)
        result = MCTS(mdp, config, evaluator).search(
            mdp.initial, np.random.default_rng(1000 + seed)
        )
        assert sum(result.visit_counts) == 2000
        regrets.append(_relative_regret(mdp, result.action))
        sizes.extend(evaluator.batch_sizes)
    assert max(sizes) <= 16
    assert np.mean(sizes) > 8  # virtual loss spreads a batch over distinct leaves
    assert np.mean(regrets) <= 0.01


def test_progressive_widening_limits_the_actions_tried():
    class Wide:
        def actions(self, state):
            return tuple(range(100))

        def step(self, state, action, rng):
            return state + 1, action / 100.0, state + 1 >= 2

    class Priors:
        def evaluate(self, state, rng):
            p = np.arange(100, dtype=float) + 1.0
            return list(p / p.sum()), 0.0

    config = MCTSConfig(num_simulations=100, widening_c=1.0, widening_alpha=0.5)
    result = MCTS(Wide(), config, Priors()).search(0, np.random.default_rng(0))
    tried = [a for a, n in zip(result.actions, result.visit_counts, strict=True) if n > 0]
    assert len(tried) <= 10  # ceil(1.0 * 100 ** 0.5)
    assert min(tried) >= 90  # the actions of highest prior come first
    wide = MCTS(Wide(), MCTSConfig(num_simulations=100), Priors()).search(
        0, np.random.default_rng(0)
    )
    assert sum(n > 0 for n in wide.visit_counts) == 100


def test_temperature_samples_from_the_visit_distribution():
    mdp = random_mdp(np.random.default_rng(0))
    config = MCTSConfig(num_simulations=50, temperature=1.0, uct_c=5.0)
    actions = {
        MCTS(mdp, config).search(mdp.initial, np.random.default_rng(s)).action for s in range(40)
    }
    assert len(actions) > 1


def test_dirichlet_noise_changes_root_priors_only_with_puct():
    mdp = random_mdp(np.random.default_rng(0))
    search = MCTS(mdp, MCTSConfig(num_simulations=10, selection="puct", dirichlet_alpha=0.3))
    search.search(mdp.initial, np.random.default_rng(0))
    root = search._root
    assert root.priors != root.base_priors
    assert math.isclose(sum(root.priors), 1.0)


def test_terminal_rewards_and_discount_in_the_backup():
    class Chain:  # three deterministic steps paying 1 each
        def actions(self, state):
            return (0,)

        def step(self, state, action, rng):
            return state + 1, 1.0, state + 1 >= 3

    class Remaining:  # exact value of the steps left
        def evaluate(self, state, rng):
            return None, sum(0.5**k for k in range(3 - state))

    config = MCTSConfig(num_simulations=20, discount=0.5)
    result = MCTS(Chain(), config, Remaining()).search(0, np.random.default_rng(0))
    assert result.value == pytest.approx(1 + 0.5 + 0.25)
    # With a zero leaf value the early simulations stop short, so the mean return through the
    # root action lies below; the value backed up through the expanded chain does not.
    zero = MCTS(Chain(), config, ConstantEvaluator(0.0)).search(0, np.random.default_rng(0))
    assert 1.0 < zero.q_values[0] < 1.75
    assert zero.value == pytest.approx(1.75)


def test_config_errors_name_the_setting():
    with pytest.raises(
        PlanningConfigError,
        match=re.escape("MCTSConfig.discount: got 1.5, expected a float in [0, 1]"),
    ):
        MCTSConfig(discount=1.5)
    with pytest.raises(PlanningConfigError, match=re.escape("MCTSConfig.selection: got 'ucb'")):
        MCTSConfig(selection="ucb")
    with pytest.raises(PlanningConfigError, match=re.escape("reuse_tree=True needs chance=")):
        MCTSConfig(chance="open_loop", reuse_tree=True)
    with pytest.raises(PlanningConfigError, match=re.escape("num_simulations: got 0")):
        MCTSConfig(num_simulations=0)
    with pytest.raises(PlanningConfigError, match=re.escape("chance_widening_c needs chance=")):
        MCTSConfig(chance="open_loop", chance_widening_c=1.0)


def test_model_and_evaluator_errors():
    class NoStep:
        def actions(self, state):
            return (0,)

    with pytest.raises(PlanningStateError, match=re.escape("(NoStep) has no method step()")):
        MCTS(NoStep())

    class NoActions:
        def actions(self, state):
            return ()

        def step(self, state, action, rng):
            return state, 0.0, True

    with pytest.raises(PlanningStateError, match=re.escape("returned no legal actions")):
        MCTS(NoActions()).search(0, np.random.default_rng(0))

    class NoBatch:
        def evaluate(self, state, rng):
            return None, 0.0

    mdp = random_mdp(np.random.default_rng(0))
    with pytest.raises(PlanningStateError, match=re.escape("needs an evaluator with evaluate_b")):
        MCTS(mdp, MCTSConfig(batch_size=4), NoBatch())

    class BadPriors:
        def evaluate(self, state, rng):
            return [1.0], 0.0

    with pytest.raises(PlanningStateError, match=re.escape("returned 1 priors for a state with 4")):
        MCTS(mdp, MCTSConfig(num_simulations=5), BadPriors()).search(
            mdp.initial, np.random.default_rng(0)
        )
    with pytest.raises(TypeError, match=re.escape("rng must be a numpy.random.Generator")):
        MCTS(mdp).search(mdp.initial, 0)


def _depth(node):
    deepest = 0
    for bucket in node.children:
        for child in (bucket or {}).values():
            deepest = max(deepest, 1 + _depth(child))
    return deepest


def test_chance_widening_grows_deep_trees_when_outcomes_never_repeat():
    class Noisy:  # every transition reaches a new state
        def actions(self, state):
            return (0, 1)

        def step(self, state, action, rng):
            t, _ = state
            return (t + 1, rng.random()), float(action), t + 1 >= 5

    plain = MCTS(Noisy(), MCTSConfig(num_simulations=300))
    plain.search((0, 0.0), np.random.default_rng(0))
    widened = MCTS(Noisy(), MCTSConfig(num_simulations=300, chance_widening_c=1.0))
    result = widened.search((0, 0.0), np.random.default_rng(0))
    assert _depth(plain._root) == 1
    assert _depth(widened._root) >= 4
    assert result.action == 1


@pytest.mark.parametrize(
    ("make_mdp", "optimal"), [(branching_mdp, 0), (lucky_outcome_mdp, 1)], ids=["branch", "lucky"]
)
def test_chance_widening_stays_right_on_adversarial_mdps(make_mdp, optimal):
    mdp = make_mdp()
    config = MCTSConfig(num_simulations=300, chance_widening_c=1.0)
    chosen = [MCTS(mdp, config).search(mdp.initial, np.random.default_rng(s)) for s in range(100)]
    assert np.mean([r.action == optimal for r in chosen]) >= 0.95


def test_chance_widening_keeps_regret_on_random_mdps():
    regrets = []
    for seed in SEEDS:
        mdp = random_mdp(np.random.default_rng(seed))
        config = MCTSConfig(num_simulations=2000, chance_widening_c=1.0)
        result = MCTS(mdp, config).search(mdp.initial, np.random.default_rng(1000 + seed))
        regrets.append(_relative_regret(mdp, result.action))
    assert np.mean(regrets) <= 0.005
    assert np.mean(np.asarray(regrets) <= 0.01) >= 0.9


def test_common_random_numbers_keep_regret_on_random_mdps():
    regrets = []
    for seed in SEEDS:
        mdp = random_mdp(np.random.default_rng(seed))
        config = MCTSConfig(num_simulations=2000, common_random_numbers=True)
        result = MCTS(mdp, config).search(mdp.initial, np.random.default_rng(1000 + seed))
        regrets.append(_relative_regret(mdp, result.action))
    assert np.mean(regrets) <= 0.005
    assert np.mean(np.asarray(regrets) <= 0.01) >= 0.9


def test_common_random_numbers_give_sibling_actions_the_same_draws():
    class Noisy:  # the reward is pure noise, the same whatever the action; then the end
        def __init__(self):
            self.draws = {0: [], 1: [], 2: []}

        def actions(self, state):
            return (0, 1, 2)

        def step(self, state, action, rng):
            x = float(rng.normal())
            self.draws[action].append(x)
            return 1, x, True

    for crn in (True, False):
        model = Noisy()
        config = MCTSConfig(num_simulations=60, max_depth=1, common_random_numbers=crn)
        MCTS(model, config, ConstantEvaluator()).search(0, np.random.default_rng(0))
        k = min(len(d) for d in model.draws.values())
        assert k >= 5
        same = [model.draws[0][j] == model.draws[1][j] == model.draws[2][j] for j in range(k)]
        assert all(same) if crn else not any(same)
        assert len(set(model.draws[0])) == len(model.draws[0])  # fresh draws visit by visit
    # A fresh seed per search.
    model = Noisy()
    config = MCTSConfig(num_simulations=3, max_depth=1, common_random_numbers=True)
    search = MCTS(model, config, ConstantEvaluator())
    search.search(0, np.random.default_rng(0))
    search.search(0, np.random.default_rng(1))
    assert model.draws[0][0] != model.draws[0][1]
