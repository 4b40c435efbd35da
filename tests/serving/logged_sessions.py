"""Sessions of decisions on the real envs, for the interaction log and export tests."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import rlagent  # noqa: F401  (registers the envs)
from rlagent.serving.interaction_log import DecisionRecord

CS_ID = "rlagent/CustomerService-v0"
CS_KWARGS: dict[str, Any] = {"history": 3, "max_turns": 5}
REC_ID = "rlagent/Recommendation-v0"
REC_KWARGS: dict[str, Any] = {
    "n_candidates": 4,
    "slate_size": 2,
    "history_length": 2,
    "n_items": 50,
}


def assert_same(a: Any, b: Any, where: str = "value") -> None:
    """Equal values of the same types, arrays with the same dtype, shape and bits."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where}: {a.dtype}{a.shape}"
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert set(a) == set(b), where  # dict equality: Minari gives the space's key order
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def cs_decisions(session_id: str, steps: int, seed: int, model_hash: str = "m1") -> list:
    """Decisions on CustomerService observations; probabilities keyed by action name."""
    env = gym.make(CS_ID, **CS_KWARGS)
    names = env.unwrapped.action_names
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for t in range(steps):
        p = rng.dirichlet(np.ones(len(names))).astype(np.float32)
        action = int(rng.choice(len(names), p=p.astype(np.float64) / p.astype(np.float64).sum()))
        probabilities: Any = {n: float(x) for n, x in zip(names, p, strict=True)}
        if t % 2:  # the other accepted form: the full vector in the env's order
            probabilities = [float(x) for x in p]
        rows.append(
            DecisionRecord(
                session_id=session_id,
                step=t,
                time=1_700_000_000.0 + 10 * seed + t,
                observation=obs,
                observation_text=" | ".join(s for s in obs["dialogue"] if s),
                action=action,
                action_name=names[action],
                probabilities=probabilities,
                planner={"name": "mcts", "simulations": 8} if t == 0 else None,
                model_hash=model_hash,
            )
        )
        obs, _, terminated, truncated, _ = env.step(11)  # ask_clarify keeps it going
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + 1)
    env.close()
    return rows


def rec_decisions(session_id: str, steps: int, seed: int, model_hash: str = "r1") -> list:
    """Decisions on Recommendation observations: slates with joint slate probabilities."""
    env = gym.make(REC_ID, **REC_KWARGS)
    n, k = REC_KWARGS["n_candidates"], REC_KWARGS["slate_size"]
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    rows = []
    for t in range(steps):
        joint = rng.dirichlet(np.ones(n**k))
        joint[[i * n + i for i in range(n)]] = 0.0  # repeated positions
        joint /= joint.sum()
        index = int(rng.choice(n**k, p=joint))
        slate = [int(i) for i in np.unravel_index(index, (n,) * k)]
        name = ",".join(map(str, slate))
        probabilities: Any = [float(x) for x in joint]
        if t == 1:
            probabilities = {
                ",".join(map(str, np.unravel_index(i, (n,) * k))): float(x)
                for i, x in enumerate(joint)
                if x > 0
            }
        rows.append(
            DecisionRecord(
                session_id,
                t,
                1_700_000_000.0 + t,
                obs,
                " / ".join(obs["candidates"]),
                slate,
                name,
                probabilities,
                None,
                model_hash,
            )
        )
        obs, _, terminated, truncated, _ = env.step(np.asarray(slate))
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + 1)
    env.close()
    return rows
