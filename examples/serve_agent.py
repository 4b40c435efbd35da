"""Train a customer-service agent, serve it over HTTP and talk to it from Python.

The agent is trained briefly with a warm start from the env's labelled expert (so that it asks
on a vague opening and resolves a specific request), served by the same app `rlagent serve`
runs, and sent a short conversation over HTTP; its decisions, with their action probabilities,
land in an SQLite interaction log, which is then exported as a Minari dataset.

    python examples/serve_agent.py                       # ~20k steps with MiniLM, a few minutes
    python examples/serve_agent.py --model runs/cs/model # serve a model you trained
    python examples/serve_agent.py --quick               # seconds, tiny random encoder

The same server from the command line: `rlagent serve MODEL`, then open http://127.0.0.1:8000/.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import httpx

from rlagent.datasets import read_episodes
from rlagent.serving import BackgroundServer, build_app, export_minari
from rlagent.training import ConfigError, RunDirectoryExistsError, load_config, train

ENV_ID = "rlagent/CustomerService-v0"
CONVERSATION = ["there's a problem with my card", "my new card still has not arrived"]


def train_agent(out: Path, quick: bool, overwrite: bool) -> Path:
    quick_settings = dict(
        encoder="tiny-random",
        encoder_layers=[-1],
        n_envs=2,
        eval_freq=0,
        eval_episodes=5,
        baseline_episodes=0,
        ppo={"n_steps": 32, "batch_size": 32, "n_epochs": 1},
        warm_start={"enabled": True, "episodes": 20, "epochs": 1},
    )
    config = load_config(
        ENV_ID,
        n_timesteps=128 if quick else 20_480,
        **(quick_settings if quick else {"warm_start": {"enabled": True}}),
    )
    return train(config, out, overwrite=overwrite).model_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, help="serve this model instead of training one")
    parser.add_argument("--out", default="runs/example-serve", help="where the run goes")
    parser.add_argument("--quick", action="store_true", help="tiny budget and random encoder")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out")
    args = parser.parse_args()
    if args.model is None:
        try:
            model = train_agent(Path(args.out), args.quick, args.overwrite)
        except (RunDirectoryExistsError, ConfigError) as exc:
            parser.exit(2, f"{parser.prog}: error: {exc}\n")
    else:
        model = args.model

    work = Path(tempfile.mkdtemp(prefix="rlagent-serve-"))
    log = work / "interactions.db"
    with BackgroundServer(build_app(model, log=log)) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            session = client.post("/v1/sessions").json()["session_id"]
            for text in CONVERSATION:
                turn = client.post(f"/v1/sessions/{session}/turns", json={"text": text}).json()
                top = sorted(turn["probabilities"].items(), key=lambda kv: -kv[1])[:3]
                print(f"customer: {text}")
                print(f"agent:    {turn['reply']}  [{turn['action']}]")
                print("          top actions: " + ", ".join(f"{a} {p:.2f}" for a, p in top))
                if turn["done"]:
                    break
            client.post(f"/v1/sessions/{session}/feedback", json={"resolved": True, "rating": 5})
            client.delete(f"/v1/sessions/{session}")
            metrics = client.get("/metrics").text
        decisions = next(
            line for line in metrics.splitlines() if line.startswith("rlagent_decisions_total")
        )
        print(decisions)

    dataset = export_minari(log, work / "dataset")
    episodes = read_episodes(dataset)
    print(
        f"logged {len(episodes)} session(s), {sum(len(e.actions) for e in episodes)} decisions; "
        f"exported to {dataset}"
    )


if __name__ == "__main__":
    main()
