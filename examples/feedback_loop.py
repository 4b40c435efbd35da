"""The feedback loop, end to end: serve v1, log its chats, judge and learn v2 from the logs.

1. Agent v1 is served over HTTP, exploring (epsilon-greedy around its choice), logging every
   decision with the probabilities it was sampled from.
2. Simulated customers (the customer-service env, here speaking Banking77's real utterances)
   talk to it over HTTP; the env's reward for each decision goes back as feedback.
3. The log is exported as a Minari dataset and split by session: one part to learn from, one to
   choose with, and one held out for the final off-policy estimate.
4. v2 is learned from the logs alone, from v1's weights: its belief probe is refitted to what
   the customers' rewards revealed (an accepted resolution names the request's group, a
   rejected one rules it out). With --epochs N, advantage-weighted regression then tunes the
   actor, one candidate per --awr-betas temperature, and off-policy evaluation on the
   choosing part picks v2.
5. Off-policy evaluation estimates v1 and v2 from the held-out logs, before any simulation.
6. The simulator then tells the truth about both, on customers the logs never held, and on
   the simulator's own phrasing (anything forgotten?).

    python examples/feedback_loop.py --v1 runs/demo/model --data ../shared/data/banking77
    python examples/feedback_loop.py --v1 runs/demo/model --log service.db   # your own log
    python examples/feedback_loop.py --quick      # seconds: a tiny random model, few chats

Everything goes to --out (new or empty; --overwrite replaces an earlier loop there):
``interactions.db``, ``logs/`` (the dataset), ``v2/`` (or the ``v2-beta*/`` candidates) and
``loop.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from rlagent.datasets import TargetPolicy, learn_from_dataset, off_policy_evaluate, read_episodes
from rlagent.evaluation import evaluate
from rlagent.serving import BackgroundServer, Exploration, build_app, export_minari, play_customers

ENV_ID = "rlagent/CustomerService-v0"
#: Marks a folder this script wrote (only such a folder is replaced with --overwrite).
MARKER = ".feedback-loop"
DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "banking77"


def quick_v1(out: Path) -> Path:
    from rlagent.agents import make_ppo, save_model

    model = make_ppo(
        ENV_ID,
        encoder="tiny-random",
        encoder_layers=[-1],
        n_envs=1,
        seed=0,
        n_steps=8,
        batch_size=8,
    )
    return save_model(model, out / "v1")


def simulate(model: Path, kwargs: dict, episodes: int, seed: int) -> dict:
    """The truth: the simulator's mean return of ``model``, sampled (as OPE) and greedy."""
    row = {}
    for name, deterministic in (("sampled", False), ("greedy", True)):
        result = evaluate(
            model,
            ENV_ID,
            env_kwargs=kwargs,
            episodes=episodes,
            seed=seed,
            deterministic=deterministic,
            device="cpu",
        )
        row[name] = {
            "mean_return": result.mean_return,
            "ci95": result.ci95,
            "success_rate": result.metrics.get("success_rate"),
        }
    return row


def split(episodes: list, shares: tuple[float, float], seed: int = 0) -> tuple[list, list, list]:
    """A seeded split of the sessions: (held out for OPE, for choosing, for learning)."""
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_ope, n_select = (int(round(share * len(episodes))) for share in shares)
    parts = np.split(order, [n_ope, n_ope + n_select])
    return tuple([episodes[i] for i in part] for part in parts)


def dr_estimate(episodes: list, model: Path) -> dict:
    report = off_policy_evaluate(episodes, TargetPolicy.load(model), seed=0)
    dr = report.estimates["dr"]
    return {"dr": dr.value, "ci95": list(dr.ci95), "ess": report.ess, "warnings": report.warnings}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--v1", type=Path, help="the served agent (default with --quick: tiny)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Banking77 CSV folder")
    parser.add_argument("--out", type=Path, default=Path("runs/feedback-loop"))
    parser.add_argument("--log", type=Path, help="learn from this interaction log, not serving")
    parser.add_argument("--chats", type=int, default=6000, help="simulated chats served")
    parser.add_argument("--epsilon", type=float, default=0.2, help="the service's exploration")
    parser.add_argument("--ope-share", type=float, default=1 / 3, help="sessions held out for OPE")
    parser.add_argument("--select-share", type=float, default=1 / 6, help="sessions for choosing")
    parser.add_argument("--awr-betas", type=float, nargs="+", default=[0.05, 0.2, 1.0])
    parser.add_argument(
        "--epochs", type=int, default=0, help="AWR passes after the probe refit (0: none)"
    )
    parser.add_argument("--awr-lambda", type=float, default=0.0, help="0: reward + next value")
    parser.add_argument("--awr-prior", choices=["logger", "init"], default="init")
    parser.add_argument(
        "--no-probe-feedback", action="store_true", help="leave v1's belief probe as it is"
    )
    parser.add_argument("--test-episodes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="tiny model, few chats")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier loop")
    args = parser.parse_args()
    out = args.out
    if out.exists() and any(out.iterdir()):
        if not (out / MARKER).exists():
            parser.exit(
                2,
                f"{parser.prog}: error: {out} is not empty and holds no earlier loop; "
                "pass a new --out (--overwrite deleted nothing).\n",
            )
        if not args.overwrite:
            parser.exit(
                2,
                f"{parser.prog}: error: {out} holds an earlier loop; pass "
                "--overwrite to replace it.\n",
            )
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("examples/feedback_loop.py\n")
    if args.quick:
        args.chats, args.test_episodes, args.awr_betas = 36, 10, [0.2, 1.0]
        args.epochs = min(args.epochs, 2)
        customers = test_customers = {}
    else:
        if not (args.data / "train.csv").exists():
            parser.exit(2, f"{parser.prog}: error: no train.csv in {args.data}; pass --data.\n")
        customers = {"dataset": str(args.data / "train.csv"), "split": "train"}
        test_customers = {"dataset": str(args.data / "test.csv"), "split": "test"}
    builtin_test = {"split": "test"}  # the simulator's own phrasing: is anything forgotten?
    v1 = args.v1 if args.v1 is not None else quick_v1(out)
    summary: dict = {"v1": str(v1), "epsilon": args.epsilon}

    # 1-2. Serve v1, exploring; simulated customers talk to it over HTTP.
    log = args.log
    if log is None:
        log = out / "interactions.db"
        app = build_app(v1, log=log, exploration=Exploration(epsilon=args.epsilon, seed=0))
        with BackgroundServer(app) as url:
            served = play_customers(
                url, env_kwargs=customers, episodes=args.chats, concurrency=args.concurrency
            )
        summary["served"] = served.summary()
        print(
            f"served {served.episodes} chats: mean return {served.mean_return:.2f}, "
            f"success {served.success_rate:.3f}, {served.wall_time_s:.0f} s"
        )

    # 3. Export; hold sessions out for the final off-policy estimate and for choosing.
    episodes = read_episodes(export_minari(log, out / "logs"))
    held_out, to_choose, to_learn = split(episodes, (args.ope_share, args.select_share))
    summary["sessions"] = {"ope": len(held_out), "choose": len(to_choose), "learn": len(to_learn)}

    # 4. v2 candidates from the logs alone, starting from v1's weights; the one off-policy
    # evaluation on the choosing share rates best becomes v2.
    candidates = {}
    for beta in args.awr_betas if args.epochs else [None]:
        folder = out / ("v2" if beta is None else f"v2-beta{beta:g}")
        learned = learn_from_dataset(
            to_learn,
            out=folder,
            init=v1,
            method="awr",
            epochs=args.epochs,
            awr_beta=1.0 if beta is None else beta,
            awr_lambda=args.awr_lambda,
            awr_prior=args.awr_prior,
            probe_feedback=not args.no_probe_feedback,
            seed=0,
        )
        probe = learned.settings.get("probe") or {}
        candidates[beta] = {
            "model": str(folder),
            "probe": probe,
            **dr_estimate(to_choose, folder),
        }
        name = "probe refit only" if beta is None else f"beta={beta:g}"
        print(f"v2 candidate {name}: dr on the choosing share {candidates[beta]['dr']:.2f}")
    best = max(candidates, key=lambda beta: candidates[beta]["dr"])
    v2 = Path(candidates[best]["model"])
    summary.update(candidates={str(b): c for b, c in candidates.items()}, v2=str(v2))

    # 5. Off-policy evaluation on the held-out sessions, before the simulator is asked.
    ope = {"v1": dr_estimate(held_out, v1), "v2": dr_estimate(held_out, v2)}
    for name, row in ope.items():
        print(f"OPE {name}: dr {row['dr']:.2f} [{row['ci95'][0]:.2f}, {row['ci95'][1]:.2f}]")
    gap = ope["v2"]["dr"] - ope["v1"]["dr"]
    predicted = "v2" if gap > 0 else "v1" if gap < 0 else "neither"
    print(f"OPE predicts the better agent: {predicted} (dr difference {gap:+.2f})")
    summary.update(ope=ope, predicted=predicted)

    # 6. The simulator's truth, on customers the logs never held, and on the built-in corpus.
    truth = {
        name: {
            "test_customers": simulate(model, test_customers, args.test_episodes, 0),
            "builtin_test": simulate(model, builtin_test, args.test_episodes, 0),
        }
        for name, model in (("v1", v1), ("v2", v2))
    }
    for name, rows in truth.items():
        for where, row in rows.items():
            for mode, r in row.items():
                print(
                    f"{name} {where:15s} {mode:8s} {r['mean_return']:7.2f} ±{r['ci95']:.2f}  "
                    f"success {r['success_rate']:.3f}"
                )
    summary["truth"] = truth
    (out / "loop.json").write_text(json.dumps(summary, indent=2, default=float))
    print(f"written {out / 'loop.json'}")


if __name__ == "__main__":
    main()
