"""rlagent collect: datasets of simulator episodes with the behaviour policy's probabilities."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

minari = pytest.importorskip(
    "minari", reason="datasets need minari (pip install rlagent[datasets])"
)
pytest.importorskip("pyarrow", reason="minari's arrow format needs pyarrow")

from tiny_models import TINY  # noqa: E402

import rlagent  # noqa: E402,F401  (registers the envs)
import rlagent.env_making  # noqa: E402
from rlagent.agents import make_ppo, save_model  # noqa: E402
from rlagent.datasets import (  # noqa: E402
    CollectError,
    DeterministicBehaviourWarning,
    TargetPolicy,
    collect,
    collect_summary,
    read_episodes,
)

CS = "rlagent/CustomerService-v0"
CS_KWARGS = {"history": 3, "max_turns": 5}
REC = "rlagent/Recommendation-v0"
REC_KWARGS = {"n_candidates": 4, "slate_size": 2, "history_length": 2, "n_items": 50}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models: customer service (plain and masked), recommendation (slate head)."""
    root = tmp_path_factory.mktemp("collect-models")
    cs = save_model(make_ppo(CS, env_kwargs=CS_KWARGS, **TINY), root / "cs")
    masked = save_model(
        make_ppo(CS, env_kwargs=CS_KWARGS, action_masks=True, **TINY), root / "masked"
    )
    slate = make_ppo(REC, env_kwargs=REC_KWARGS, policy_kwargs={"candidates": "candidates"}, **TINY)
    return {"cs": cs, "masked": masked, "rec": save_model(slate, root / "rec")}


class _Recording(gym.Wrapper):
    """Records what the env gave, per reset seed: observations, actions, rewards, masks."""

    def __init__(self, env: gym.Env, store: dict[int, dict[str, list]]) -> None:
        super().__init__(env)
        self.store = store
        self.current: dict[str, list] | None = None

    def _mask(self) -> Any:
        masks = getattr(self.env.unwrapped, "action_masks", None)
        return None if masks is None else np.asarray(masks(), dtype=bool)

    def reset(self, *, seed=None, options=None):
        obs, info = self.env.reset(seed=seed, options=options)
        self.current = {"obs": [obs], "actions": [], "rewards": [], "masks": [self._mask()]}
        self.store[seed] = self.current
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.current["obs"].append(obs)
        self.current["actions"].append(np.copy(action))
        self.current["rewards"].append(float(reward))
        self.current["masks"].append(self._mask())
        return obs, reward, terminated, truncated, info


@pytest.fixture
def recorded(monkeypatch):
    """Every env collect makes is wrapped in :class:`_Recording`; returns the store."""
    store: dict[int, dict[str, list]] = {}
    make = rlagent.env_making.make_env
    monkeypatch.setattr(
        rlagent.env_making, "make_env", lambda *a, **k: _Recording(make(*a, **k), store)
    )
    return store


def _same(a: Any, b: Any, where: str = "value") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            _same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, tuple | list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)
        assert np.asarray(a).dtype == np.asarray(b).dtype, where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _flat(action: Any, nvec: tuple[int, ...] | None) -> int:
    return int(action) if nvec is None else int(np.ravel_multi_index(tuple(action), nvec))


def _check_against_recording(out, store, seed: int, nvec=None) -> list:
    """The dataset holds what the env gave, read by read_episodes and by Minari alike."""
    episodes = read_episodes(out)
    minari_episodes = list(minari.MinariDataset(out / "data").iterate_episodes())
    assert len(minari_episodes) == len(episodes)
    for i, (episode, raw) in enumerate(zip(episodes, minari_episodes, strict=True)):
        truth = store[seed + i]
        steps = len(truth["actions"])
        assert len(episode) == steps and len(episode.observations) == steps + 1
        for t in range(steps + 1):
            _same(episode.observations[t], truth["obs"][t], f"episode {i} obs {t}")
        np.testing.assert_array_equal(episode.actions, np.asarray(truth["actions"]))
        np.testing.assert_array_equal(np.asarray(raw.actions), np.asarray(truth["actions"]))
        assert episode.rewards.tolist() == truth["rewards"]
        assert np.asarray(raw.rewards).tolist() == truth["rewards"]
        taken = [_flat(a, nvec) for a in episode.actions]
        np.testing.assert_array_equal(
            episode.propensities, episode.action_probabilities[np.arange(steps), taken]
        )
        np.testing.assert_allclose(episode.action_probabilities.sum(axis=1), 1.0, atol=1e-12)
        assert np.isnan(episode.infos["propensity"][steps])
        assert np.isnan(episode.infos["action_probabilities"][steps]).all()
        assert episode.terminated or episode.truncated
        assert episode.metadata["seed"] == seed + i
        assert episode.metadata["return"] == pytest.approx(sum(truth["rewards"]))
    return episodes


def test_epsilon_soft_baseline_round_trips_with_the_formula(tmp_path, recorded):
    out = collect(
        "heuristic", CS, env_kwargs=CS_KWARGS, episodes=6, out_dir=tmp_path / "ds", epsilon=0.3,
        seed=4,
    )  # fmt: skip
    episodes = _check_against_recording(out, recorded, seed=4)
    env = gym.make(CS, **CS_KWARGS)
    heuristic = env.unwrapped.BASELINES["heuristic"](env)
    for i, episode in enumerate(episodes):
        obs, _ = env.reset(seed=4 + i)
        heuristic.reset(seed=4 + i)
        masks = episode.infos["action_mask"]
        assert masks.dtype == bool and masks.shape == (len(episode) + 1, env.action_space.n)
        for t, action in enumerate(episode.actions):
            np.testing.assert_array_equal(masks[t], env.unwrapped.action_masks())
            base = heuristic.act(obs)
            allowed = masks[t].astype(float)
            expected = 0.7 * np.eye(len(allowed))[base] + 0.3 * allowed / allowed.sum()
            np.testing.assert_allclose(episode.action_probabilities[t], expected, atol=1e-12)
            obs, *_ = env.step(int(action))
    summary = collect_summary(out)
    assert summary["source"] == "collect" and summary["env_id"] == CS
    assert summary["policy"] == {"kind": "baseline", "name": "heuristic", "epsilon": 0.3}
    assert summary["behaviour"] == "epsilon-soft baseline, epsilon=0.3"
    assert summary["uniform_over"] == "allowed actions (env.action_masks())"
    assert summary["summary"]["episodes"] == 6
    assert "success_rate" in episodes[0].metadata["episode_metrics"]


def test_model_samples_its_own_distribution(models, tmp_path, recorded):
    out = collect(models["cs"], CS, episodes=5, out_dir=tmp_path / "ds", batch_size=3)
    episodes = _check_against_recording(out, recorded, seed=0)
    target = TargetPolicy.load(models["cs"], env_id=CS, env_kwargs=CS_KWARGS)
    observations = [o for e in episodes for o in e.observations[: len(e)]]
    recorded_probs = np.concatenate([e.action_probabilities for e in episodes])
    expected = target.outputs(observations).probabilities
    np.testing.assert_allclose(recorded_probs, expected, atol=1e-5)
    # At temperature 2 the distribution is the model's, flattened: p ** (1 / 2), normalised.
    hot = read_episodes(
        collect(models["cs"], CS, episodes=2, out_dir=tmp_path / "t2", temperature=2.0)
    )
    probs = np.concatenate([e.action_probabilities for e in hot])
    base = target.outputs([o for e in hot for o in e.observations[: len(e)]]).probabilities
    flat = np.sqrt(base) / np.sqrt(base).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(probs, flat, atol=1e-5)
    summary = collect_summary(out)
    assert summary["policy"]["kind"] == "model" and len(summary["policy"]["model_hash"]) == 64
    assert summary["env_kwargs"].items() >= CS_KWARGS.items()  # the model's own kwargs


def test_model_epsilon_greedy_around_its_mode(models, tmp_path):
    out = collect(models["cs"], CS, episodes=3, out_dir=tmp_path / "ds", epsilon=0.5)
    target = TargetPolicy.load(models["cs"], env_id=CS, env_kwargs=CS_KWARGS)
    for episode in read_episodes(out):
        mode = target.outputs(episode.observations[: len(episode)]).probabilities.argmax(axis=1)
        masks = episode.infos["action_mask"][: len(episode)].astype(float)
        expected = 0.5 * np.eye(masks.shape[1])[mode] + 0.5 * masks / masks.sum(1, keepdims=True)
        np.testing.assert_allclose(episode.action_probabilities, expected, atol=1e-12)


def test_a_masked_model_records_masks_and_never_takes_a_masked_action(models, tmp_path):
    out = collect(models["masked"], CS, episodes=6, out_dir=tmp_path / "ds", temperature=50.0)
    for episode in read_episodes(out):
        masks = episode.infos["action_mask"][: len(episode)]
        assert (~masks).any() or len(episode) == 1
        assert (episode.action_probabilities[~masks] == 0).all()
        assert masks[np.arange(len(episode)), episode.actions].all()


def test_same_call_same_dataset_and_independent_of_the_batch(models, tmp_path):
    def arrays(out):
        return [
            (e.actions, e.rewards, e.action_probabilities, e.observations)
            for e in read_episodes(out)
        ]

    kwargs = dict(episodes=5, seed=11, temperature=1.5)
    first = arrays(collect(models["cs"], CS, out_dir=tmp_path / "a", batch_size=4, **kwargs))
    again = arrays(collect(models["cs"], CS, out_dir=tmp_path / "b", batch_size=4, **kwargs))
    one_by_one = arrays(collect(models["cs"], CS, out_dir=tmp_path / "c", batch_size=1, **kwargs))
    for (a, r, p, o), (a2, r2, p2, o2), (a3, _, p3, _) in zip(
        first, again, one_by_one, strict=True
    ):
        np.testing.assert_array_equal(a, a2)
        np.testing.assert_array_equal(p, p2)
        assert r.tolist() == r2.tolist() and len(o) == len(o2)
        np.testing.assert_array_equal(a, a3)
        np.testing.assert_allclose(p, p3, atol=1e-6)
    other = arrays(collect(models["cs"], CS, out_dir=tmp_path / "d", **{**kwargs, "seed": 12}))
    assert any(
        len(x[0]) != len(y[0]) or (x[0] != y[0]).any() for x, y in zip(first, other, strict=True)
    )


def test_baselines_with_their_own_distribution_and_deterministic_ones(tmp_path, recorded):
    out = collect("random", CS, env_kwargs=CS_KWARGS, episodes=3, out_dir=tmp_path / "r")
    for episode in read_episodes(out):
        masks = episode.infos["action_mask"][: len(episode)].astype(float)
        np.testing.assert_allclose(
            episode.action_probabilities, masks / masks.sum(axis=1, keepdims=True)
        )
    message = "'oracle' without epsilon is deterministic: every decision is recorded with "
    with pytest.warns(DeterministicBehaviourWarning, match=re.escape(message)):
        out = collect("oracle", CS, env_kwargs=CS_KWARGS, episodes=3, out_dir=tmp_path / "o")
    for episode in read_episodes(out):
        assert (episode.propensities == 1.0).all()
    assert collect_summary(out)["behaviour"] == "deterministic baseline (propensity 1)"


def test_slates_collect_and_read_back(models, tmp_path, recorded):
    n, k = REC_KWARGS["n_candidates"], REC_KWARGS["slate_size"]
    out = collect(models["rec"], REC, episodes=2, out_dir=tmp_path / "m")
    episodes = _check_against_recording(out, recorded, seed=0, nvec=(n,) * k)
    assert episodes[0].actions.shape[1:] == (k,)
    assert episodes[0].action_probabilities.shape[1] == n**k
    # The slate head's joint over ordered slates (stopped slates repeat the first position).
    target = TargetPolicy.load(models["rec"], env_id=REC, env_kwargs=REC_KWARGS)
    for episode in episodes:
        expected = target.outputs(episode.observations[: len(episode)]).probabilities
        np.testing.assert_allclose(episode.action_probabilities, expected, atol=1e-5)
    assert "action_mask" not in episodes[0].infos
    recorded.clear()
    out = collect(
        "random", REC, env_kwargs=REC_KWARGS, episodes=2, out_dir=tmp_path / "b", epsilon=0.5
    )
    episodes = _check_against_recording(out, recorded, seed=0, nvec=(n,) * k)
    repeats = [i * n + i for i in range(n)]
    distinct, every = 1 / (n * (n - 1)), 1 / n**k
    for episode in episodes:
        expected = np.full(n**k, 0.5 * distinct + 0.5 * every)
        expected[repeats] = 0.5 * every  # the uniform part covers every slate of the space
        np.testing.assert_allclose(
            episode.action_probabilities, np.tile(expected, (len(episode), 1))
        )
    assert collect_summary(out)["uniform_over"] == "every action of the action space"


def test_ope_of_the_logger_itself_recovers_the_logged_mean_return(models, tmp_path, capsys):
    from rlagent.cli import main

    out = collect(models["cs"], CS, episodes=40, out_dir=tmp_path / "ds", temperature=1.0)
    mean_return = collect_summary(out)["summary"]["mean_return"]
    argv = ["ope", str(out), "--policy", str(models["cs"]), "--json", "--bootstrap", "50"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    # On-policy every importance weight is 1 (up to float32), so the importance-sampling
    # estimates are the logged mean return; dr adds a zero-mean correction: its interval covers.
    scale = max(1.0, abs(mean_return))
    for name in ("is", "wis", "pdis", "wpdis"):
        assert report[name]["value"] == pytest.approx(mean_return, abs=0.01 * scale), name
    low, high = report["dr"]["ci95"]
    assert low <= mean_return <= high, (report["dr"], mean_return)
    assert report["ess"] == pytest.approx(40, rel=0.01)


def test_cli_collects_and_prints_a_summary(tmp_path, capsys):
    from rlagent.cli import main

    out = tmp_path / "ds"
    argv = ["collect", "heuristic", "--env", CS, "--env-kwargs", "history=3", "max_turns=5"]
    argv += ["--episodes", "3", "--epsilon", "0.1", "--out", str(out), "--seed", "2"]
    assert main([*argv, "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["summary"]["episodes"] == 3 and summary["seed"] == 2
    assert summary["env_kwargs"] == CS_KWARGS and summary["out"] == str(out)
    assert main(argv) == 2
    assert "rlagent collect: error: " in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    assert capsys.readouterr().out.startswith("Wrote 3 episodes (")
    assert len(read_episodes(out)) == 3
    with pytest.raises(SystemExit):
        main([*argv, "--temperature", "2"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("policy", "kwargs", "message"),
    [
        (
            "nobody",
            {},
            "Policy 'nobody' is neither a model folder nor a baseline of "
            "rlagent/CustomerService-v0 (baselines: heuristic, labelled, oracle, random); pass "
            "the path of a model folder (rlagent train writes DIR/model) or one of the baseline "
            "names.",
        ),
        ("heuristic", {"epsilon": 1.5}, "epsilon=1.5 is outside [0, 1]; it is the probability"),
        ("heuristic", {"epsilon": -0.1}, "epsilon=-0.1 is outside [0, 1]"),
        (
            "heuristic",
            {"epsilon": 0.1, "temperature": 2.0},
            "Got both epsilon=0.1 and temperature=2.0; pass one",
        ),
        ("heuristic", {"temperature": 0.0}, "temperature=0.0; expected a finite number > 0"),
        ("heuristic", {"temperature": -1.0}, "temperature=-1.0; expected a finite number > 0"),
        (
            "heuristic",
            {"temperature": 2.0},
            "temperature=2.0 applies to a model's action distribution; the baseline 'heuristic' "
            "has none: pass epsilon (--epsilon e) to explore around it.",
        ),
        ("heuristic", {"episodes": 0}, "episodes=0; expected an int >= 1 (--episodes N)."),
    ],
)
def test_settings_errors_say_what_to_do(tmp_path, policy, kwargs, message):
    settings = {"episodes": 2, **kwargs}
    with pytest.raises(CollectError, match=re.escape(message)):
        collect(policy, CS, env_kwargs=CS_KWARGS, out_dir=tmp_path / "ds", **settings)
    assert not (tmp_path / "ds").exists()


def test_a_baseline_needs_its_env(tmp_path):
    message = "Policy 'heuristic' is not a model folder (there is no such file or directory), "
    with pytest.raises(CollectError, match=re.escape(message)):
        collect("heuristic", None, episodes=1, out_dir=tmp_path / "ds")


def test_output_folders_are_replaced_only_when_they_are_datasets(tmp_path):
    out = tmp_path / "ds"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeterministicBehaviourWarning)
        collect("oracle", CS, env_kwargs=CS_KWARGS, episodes=1, out_dir=out)
        message = (
            f"{out} is not empty; pass --overwrite (overwrite=True) to replace an earlier "
            "dataset there, or choose a new folder."
        )
        with pytest.raises(CollectError, match=re.escape(message)):
            collect("oracle", CS, env_kwargs=CS_KWARGS, episodes=1, out_dir=out)
        collect("oracle", CS, env_kwargs=CS_KWARGS, episodes=2, out_dir=out, overwrite=True)
        assert len(read_episodes(out)) == 2
        foreign = tmp_path / "mine"
        foreign.mkdir()
        (foreign / "notes.txt").write_text("keep me")
        message = f"{foreign} holds files that rlagent collect did not write"
        with pytest.raises(CollectError, match=re.escape(message)):
            collect("oracle", CS, env_kwargs=CS_KWARGS, episodes=1, out_dir=foreign, overwrite=True)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_a_masked_target_reads_the_recorded_masks(models, tmp_path):
    from rlagent.datasets import off_policy_evaluate

    out = collect(
        "heuristic", CS, env_kwargs=CS_KWARGS, episodes=8, out_dir=tmp_path / "ds", epsilon=0.2
    )
    target = TargetPolicy.load(models["masked"], env_id=CS, env_kwargs=CS_KWARGS)
    report = off_policy_evaluate(read_episodes(out), target, value_model=None, n_bootstrap=20)
    # The uniform part covers every allowed action, and the masked target takes no other.
    assert report.support.poorly_supported == 0 and report.support.max_unsupported_mass < 1e-6


def test_a_model_with_epsilon_zero_is_deterministic_and_says_so(models, tmp_path):
    message = "The model with epsilon 0 is deterministic: every decision is recorded with "
    with pytest.warns(DeterministicBehaviourWarning, match=re.escape(message)):
        out = collect(models["cs"], CS, episodes=2, out_dir=tmp_path / "ds", epsilon=0.0)
    assert all((e.propensities == 1.0).all() for e in read_episodes(out))
