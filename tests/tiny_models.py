"""Small PPO models on the tiny random encoder, shared by the serving and dataset tests."""

from __future__ import annotations

import torch

#: ``make_ppo`` keyword arguments for a model that builds in seconds.
TINY = dict(
    encoder="tiny-random",
    encoder_layers=[-1],
    n_envs=1,
    seed=0,
    device="cpu",
    max_length=16,
    n_steps=8,
    batch_size=8,
)


def sharpen(model):
    """Scale the action head so that an untrained policy's choices differ between inputs."""
    with torch.no_grad():
        for parameter in model.policy.action_net.parameters():
            parameter.mul_(300.0)
    return model
