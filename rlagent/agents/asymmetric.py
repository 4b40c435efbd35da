"""An asymmetric actor-critic: feature columns the critic reads and the actor never does.

A training env may carry hidden state for the critic (``PrivilegedObservation`` adds the env's
``privileged_features()``); the policy then wraps its MLP extractor in :class:`ActorInputMask`,
which zeroes those columns on every actor path, so the actions (and everything that samples or
scores them) depend on the observation alone, while value targets are learned with the extra
information. The critic also gets those columns appended to its latent vector, so its value
head has a direct linear path from them: a single hidden scalar such as a remaining budget is
otherwise one input among thousands of embedding features, and the MLP is slow to give it the
weight it deserves. Advantages computed from such a critic have less variance; at acting time
the privileged entry can hold anything (``rlagent.agents.ModelAgent`` fills zeros).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ActorInputMask", "CriticOnlyError", "critic_only_columns"]


class CriticOnlyError(ValueError):
    """``critic_only`` names an entry that is not a numeric observation entry."""


def critic_only_columns(
    numeric: Sequence[tuple[str, int]], numeric_offset: int, keys: Sequence[str]
) -> list[int]:
    """Columns of the features vector that hold the numeric entries ``keys``.

    Args:
        numeric: ``(name, flat size)`` of each numeric entry, in features order (after all
            text columns).
        numeric_offset: Index of the first numeric column.
        keys: Entries for the critic only.

    Raises:
        CriticOnlyError: When a key is not a numeric entry.
    """
    offsets: dict[str, tuple[int, int]] = {}
    offset = numeric_offset
    for name, size in numeric:
        offsets[name] = (offset, size)
        offset += size
    columns: list[int] = []
    for key in keys:
        if key not in offsets:
            raise CriticOnlyError(
                f"policy_kwargs['critic_only'] names {key!r}, which is not a numeric "
                f"observation entry (numeric entries: {sorted(offsets)}); build the env with "
                "rlagent.wrappers.PrivilegedObservation, or drop it from critic_only."
            )
        start, size = offsets[key]
        columns += range(start, start + size)
    return columns


class ActorInputMask(nn.Module):
    """Wrap an SB3 MLP extractor so that the actor sees ``columns`` of the features as zero.

    The critic's latent is the base critic latent followed by the ``columns`` themselves
    (``latent_dim_vf`` grows by their number), so the value head is linear in them on top of
    what the MLP makes of the features. ``hidden`` columns are zero for both (targets of an
    auxiliary loss that neither reads, see :mod:`rlagent.agents.auxiliary`).

    Args:
        base: The extractor (``forward``, ``forward_actor``, ``forward_critic``, latent sizes).
        features_dim: Width of the features vector.
        columns: Feature columns the actor must not read.
        hidden: Feature columns neither the actor nor the critic reads.
    """

    def __init__(
        self,
        base: nn.Module,
        features_dim: int,
        columns: Sequence[int],
        hidden: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.base = base
        self.latent_dim_pi = base.latent_dim_pi
        self.latent_dim_vf = base.latent_dim_vf + len(columns)
        if hasattr(base, "context_dim"):
            self.context_dim = base.context_dim
        keep = torch.ones(int(features_dim))
        keep[list(columns) + list(hidden)] = 0.0
        self.register_buffer("keep", keep, persistent=False)
        keep_critic = torch.ones(int(features_dim))
        keep_critic[list(hidden)] = 0.0
        self.register_buffer("keep_critic", keep_critic, persistent=False)
        self.register_buffer(
            "columns", torch.as_tensor(list(columns), dtype=torch.long), persistent=False
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(latent_pi, latent_vf)``."""
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """The actor's latent from the features with the critic-only columns zeroed."""
        return self.base.forward_actor(features * self.keep)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """The critic's latent (hidden columns zeroed), followed by the critic-only columns."""
        return torch.cat(
            [
                self.base.forward_critic(features * self.keep_critic),
                features.index_select(1, self.columns),
            ],
            dim=1,
        )
