"""Tail averaging: a final model whose weights are the mean of the run's last checkpoints.

PPO's policy keeps moving until the last update, and the return of consecutive models of one
run can differ by more than the gap between two configurations; which of them happens to be
last is luck. The mean of the weights over the last few checkpoints (the policy at the end and
at the ``n`` checkpoints before it, all from one run) sits in the middle of that last stretch
and scores more steadily, as weight averaging does for supervised networks. The checkpoints
themselves keep the last trained weights, so ``--resume`` continues training from those.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

__all__ = ["AveragingError", "average_policy_weights"]


class AveragingError(ValueError):
    """Raised when saved models cannot be averaged into a policy."""


def average_policy_weights(policy: torch.nn.Module, model_paths: Sequence[str | Path]) -> None:
    """Load into ``policy`` the mean of the policy weights saved in ``model_paths``.

    Floating-point tensors are averaged in the order given (the sum of the first, second...
    divided by their number); a tensor equal in every model (a frozen encoder's weights) and
    any integer tensor is taken as it is.

    Args:
        policy: The policy to overwrite, of the same architecture as the saved ones.
        model_paths: Saved models of that policy (model directories, as in every checkpoint),
            at least one. An older checkpoint's ``model.zip`` is read too: only its weights,
            with torch's weights-only loader, so nothing in it is unpickled.

    Raises:
        AveragingError: No paths, or a saved model whose weights do not match ``policy``.
        rlagent.agents.ModelFileError: A model directory that is missing or damaged.
    """
    paths = [Path(p) for p in model_paths]
    if not paths:
        raise AveragingError("average_policy_weights needs at least one saved model.")
    states = []
    for path in paths:
        states.append(_policy_state(path))
    own = policy.state_dict()
    for path, state in zip(paths, states, strict=True):
        if state.keys() != own.keys() or any(state[key].shape != own[key].shape for key in own):
            raise AveragingError(
                f"{path} was saved from a policy of another architecture than the one to "
                "average into; average only checkpoints of one run."
            )
    first = states[0]
    averaged = {}
    for key, value in first.items():
        rest = [state[key] for state in states[1:]]
        if not torch.is_floating_point(value) or all(torch.equal(value, r) for r in rest):
            averaged[key] = value
            continue
        total = value.clone()
        for other in rest:
            total += other
        averaged[key] = total / len(states)
    policy.load_state_dict(averaged)


def _policy_state(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix != ".zip":
        from rlagent.agents.loading import read_policy_state

        return read_policy_state(path)
    from stable_baselines3.common.save_util import load_from_zip_file

    # load_data=False skips the pickled `data` entry; the .pth files load weights-only.
    _, params, _ = load_from_zip_file(path, device="cpu", load_data=False)
    if not params or "policy" not in params:
        raise AveragingError(f"{path} holds no policy weights (not a saved SB3 model?).")
    return params["policy"]
