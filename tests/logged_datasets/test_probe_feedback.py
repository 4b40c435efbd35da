"""Refitting the belief probe to what logged feedback revealed (customer service, tiny model)."""

from __future__ import annotations

import re

import gymnasium as gym
import numpy as np
import pytest
import torch
from expert_episodes import expert_episode
from tiny_models import TINY

import rlagent  # noqa: F401  (registers the envs)
from envs.customer_service import CustomerServiceEnv
from rlagent.agents import make_expert, make_ppo, save_model
from rlagent.agents.probe_feedback import (
    ProbeFeedbackError,
    feedback_labels,
    fit_probe,
    probe_scores,
)
from rlagent.datasets import learn_from_dataset, logged_decisions
from rlagent.env_making import make_env

CS = "rlagent/CustomerService-v0"
KW = {"history": 3, "max_turns": 5}


def test_the_env_says_what_a_resolution_s_reward_reveals():
    env = CustomerServiceEnv()
    n = len(env.groups)
    accepted = env.feedback_targets(2, 19.0)
    assert accepted == {5 + g: float(g == 2) for g in range(n)}
    assert env.feedback_targets(2, -5.0) == {7: 0.0}
    assert env.feedback_targets(env.action_names.index("ask_clarify"), -1.0) == {}


@pytest.fixture(scope="module")
def logs():
    """60 episodes, half the labelled expert's, half a random logger's."""
    env = gym.make(CS, **KW)
    expert = make_expert(env, "labelled")
    rng = np.random.default_rng(0)
    episodes = [expert_episode(env, expert, seed, seed % 2 == 0, rng) for seed in range(60)]
    env.close()
    return episodes


def test_fit_probe_learns_the_revealed_groups(logs):
    model = make_ppo(CS, env_kwargs=KW, **TINY)
    env = make_env(CS, KW)
    data = logged_decisions(logs, model, env, gamma=0.99)
    n = int(model.policy.mlp_extractor.head.out_features)
    labels, mask = feedback_labels(data.actions, data.rewards, env.unwrapped.feedback_targets, n)
    env.close()
    assert mask.any() and not mask[:, :5].any()  # only group entries are revealed
    before = probe_scores(model.policy, data, labels, mask)
    head = model.policy.mlp_extractor.head
    untouched = head.weight[:5].detach().clone()
    record = fit_probe(model.policy, data, labels, mask, epochs=100, learning_rate=1e-2)
    after = probe_scores(model.policy, data, labels, mask)
    assert record["accuracy_before"] == pytest.approx(before["accuracy"])
    assert after["loss"] < before["loss"] and after["accuracy"] > before["accuracy"]
    assert after["accuracy"] == pytest.approx(record["accuracy_after"])
    assert torch_equal(head.weight[:5], untouched)  # mood/patience rows were never labelled


def torch_equal(a, b) -> bool:
    return bool((a.detach() == b).all())


def test_learn_with_probe_feedback_records_the_fit(logs, tmp_path):
    v1 = save_model(make_ppo(CS, env_kwargs=KW, **TINY), tmp_path / "v1")
    result = learn_from_dataset(
        logs, init=v1, method="awr", awr_prior="init", probe_feedback=True, epochs=2
    )
    probe = result.settings["probe"]
    assert probe["train"]["labelled"] > 0
    assert probe["train"]["loss_after"] < probe["train"]["loss_before"]
    assert set(probe) == {"train", "val_before", "val"}


def test_probe_feedback_errors_say_what_was_wrong(logs, tmp_path):
    flat = make_ppo(
        CS,
        env_kwargs=KW,
        auxiliary={"coef": 0.0, "bottleneck": False, "belief_noise": 0.0},
        **TINY,
    )
    path = save_model(flat, tmp_path / "flat")
    with pytest.raises(ProbeFeedbackError, match=re.escape("not through a belief probe")):
        learn_from_dataset(logs, init=path, method="awr", probe_feedback=True, epochs=1)
    model = make_ppo(CS, env_kwargs=KW, **TINY)
    env = make_env(CS, KW)
    data = logged_decisions(logs[:1], model, env, gamma=0.99)
    env.close()
    n = int(model.policy.mlp_extractor.head.out_features)
    none = np.zeros((len(data), n), dtype=bool)
    with pytest.raises(ProbeFeedbackError, match=re.escape("No logged decision's feedback")):
        fit_probe(model.policy, data, np.zeros((len(data), n)), none)


def test_validation_stops_early_and_the_anchor_holds_the_probe(logs):
    model = make_ppo(CS, env_kwargs=KW, **TINY)
    env = make_env(CS, KW)
    train = logged_decisions(logs[:40], model, env, gamma=0.99)
    val = logged_decisions(logs[40:], model, env, gamma=0.99)
    n = int(model.policy.mlp_extractor.head.out_features)
    targets = env.unwrapped.feedback_targets
    env.close()
    labels, mask = feedback_labels(train.actions, train.rewards, targets, n)
    val_labels, val_mask = feedback_labels(val.actions, val.rewards, targets, n)
    head = model.policy.mlp_extractor.head
    start = head.weight.detach().clone()
    before = probe_scores(model.policy, val, val_labels, val_mask)["loss"]
    record = fit_probe(
        model.policy,
        train,
        labels,
        mask,
        epochs=200,
        learning_rate=3e-2,
        validation=(val, val_labels, val_mask),
        patience=3,
    )
    # The kept pass is the best on validation, never worse than the start.
    assert record["epochs"] < 200
    assert probe_scores(model.policy, val, val_labels, val_mask)["loss"] <= before
    drift = {}
    for anchor in (0.0, 10.0):
        with torch.no_grad():
            head.weight.copy_(start)
        fit_probe(model.policy, train, labels, mask, epochs=20, learning_rate=3e-2, anchor=anchor)
        drift[anchor] = float(((head.weight - start) ** 2).sum())
    assert 0 < drift[10.0] < drift[0.0] / 2
