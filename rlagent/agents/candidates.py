"""A candidate-scoring policy head: one shared network scores every candidate text.

In a recommendation env the actions are positions in a list of candidate items, each read as
its own text segment. A head over the concatenation of all segments must learn the same
judgement separately for every position; a candidate-scoring head applies one small network
to each candidate's embedding (plus that candidate's numeric features and a context vector
built from the whole observation) and turns the scores into the action distribution:
``Categorical`` for ``Discrete(n)``, :class:`rlagent.agents.slate.SlateDistribution` for
slates ``MultiDiscrete([n] * k)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from gymnasium import spaces
from stable_baselines3.common.torch_layers import MlpExtractor
from torch import nn

__all__ = [
    "CandidateLayout",
    "CandidateLayoutError",
    "CandidateScorer",
    "CandidateMlpExtractor",
    "candidate_layout",
]


class CandidateLayoutError(ValueError):
    """The observation or action space does not fit a candidate-scoring policy."""


@dataclass(frozen=True)
class CandidateLayout:
    """Where each candidate's inputs sit in the features vector.

    Attributes:
        n_candidates: Number of candidate segments (and positions in the action space).
        slots: Slate size (1 for a ``Discrete`` action space).
        columns: ``n_candidates`` rows of feature columns: the candidate's embedding, then its
            numeric features.
        feature_keys: Names of the per-candidate numeric entries, in column order.
    """

    n_candidates: int
    slots: int
    columns: tuple[tuple[int, ...], ...]
    feature_keys: tuple[str, ...]

    @property
    def width(self) -> int:
        """Inputs per candidate."""
        return len(self.columns[0])


def _slots(action_space: spaces.Space, n: int, key: str) -> int:
    if isinstance(action_space, spaces.Discrete) and int(action_space.n) == n:
        return 1
    if (
        isinstance(action_space, spaces.MultiDiscrete)
        and action_space.nvec.ndim == 1
        and all(int(v) == n for v in action_space.nvec)
        and len(action_space.nvec) <= n
    ):
        return len(action_space.nvec)
    raise CandidateLayoutError(
        f"A candidate-scoring policy over {n} {key!r} segments needs a Discrete({n}) or "
        f"MultiDiscrete([{n}] * k) action space (k <= {n}) whose actions are candidate "
        f"positions; got {action_space}. Drop policy_kwargs['candidates'] for this env."
    )


def candidate_layout(
    observation_space: spaces.Dict,
    action_space: spaces.Space,
    text: Sequence[tuple[str, int]],
    numeric: Sequence[tuple[str, int]],
    hidden_size: int,
    key: str,
    feature_keys: Sequence[str] | None = None,
) -> CandidateLayout:
    """Locate the candidates' embeddings and numeric features in the extractor's output.

    The text features extractor concatenates, in observation-space order, ``segments x
    hidden_size`` columns per text entry and then every numeric entry flattened.

    Args:
        observation_space: The tokenized observation space (used in error messages).
        action_space: ``Discrete(n)`` or ``MultiDiscrete([n] * k)``.
        text: ``(name, segments)`` of each text entry, in features order.
        numeric: ``(name, flat size)`` of each numeric entry, in features order.
        hidden_size: Embedding width per segment.
        key: Name of the text entry holding one segment per candidate.
        feature_keys: Numeric entries with one value per candidate; ``None`` takes every numeric
            entry named ``<key without a trailing s>_*`` with ``n`` values (``candidates`` ->
            ``candidate_popularity``...).

    Returns:
        The :class:`CandidateLayout`.

    Raises:
        CandidateLayoutError: When ``key`` is not a text entry, a feature entry does not have one
            value per candidate, or the action space is not over candidate positions.
    """
    offset = 0
    start, n = -1, 0
    for name, segments in text:
        if name == key:
            start, n = offset, segments
        offset += segments * hidden_size
    if start < 0:
        raise CandidateLayoutError(
            f"policy_kwargs['candidates']={key!r} is not a text entry of the observation "
            f"(text entries: {[name for name, _ in text]}; keys: {list(observation_space.spaces)})."
        )
    slots = _slots(action_space, n, key)
    sizes = dict(numeric)
    offsets = {}
    for name, size in numeric:
        offsets[name] = offset
        offset += size
    if feature_keys is None:
        prefix = (key[:-1] if key.endswith("s") else key) + "_"
        feature_keys = [name for name, size in numeric if name.startswith(prefix) and size == n]
    feature_keys = list(feature_keys)
    for name in feature_keys:
        if sizes.get(name) != n:
            raise CandidateLayoutError(
                f"candidate feature {name!r} must be a numeric observation entry with one value "
                f"per candidate ({n}); numeric entries: {sizes}."
            )
    columns = tuple(
        tuple(range(start + i * hidden_size, start + (i + 1) * hidden_size))
        + tuple(offsets[name] + i for name in feature_keys)
        for i in range(n)
    )
    return CandidateLayout(n, slots, columns, tuple(feature_keys))


class CandidateMlpExtractor(nn.Module):
    """SB3's ``MlpExtractor`` whose actor output also carries every candidate's inputs.

    ``forward_actor`` returns ``[context (latent_dim_pi of the MLP), candidate inputs
    (n x width, flattened)]``; :class:`CandidateScorer` splits them again.
    """

    def __init__(self, base: MlpExtractor, layout: CandidateLayout) -> None:
        super().__init__()
        self.base = base
        self.context_dim = int(base.latent_dim_pi)
        self.latent_dim_pi = self.context_dim + layout.n_candidates * layout.width
        self.latent_dim_vf = int(base.latent_dim_vf)
        self.register_buffer(
            "columns", torch.tensor(layout.columns, dtype=torch.long).reshape(-1), persistent=False
        )

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(actor latent, critic latent)``."""
        return self.forward_actor(features), self.forward_critic(features)

    def forward_actor(self, features: torch.Tensor) -> torch.Tensor:
        """Context vector and candidate inputs, concatenated."""
        context = self.base.forward_actor(features)
        return torch.cat([context, features.index_select(1, self.columns)], dim=1)

    def forward_critic(self, features: torch.Tensor) -> torch.Tensor:
        """The critic latent of the wrapped MLP."""
        return self.base.forward_critic(features)


class CandidateScorer(nn.Module):
    """One MLP applied to each ``[candidate inputs, context]``, giving one score per candidate.

    Args:
        context_dim: Width of the context vector.
        n_candidates: Number of candidates.
        width: Inputs per candidate.
        hidden: Hidden layer sizes of the shared MLP.
        activation_fn: Activation between layers.
        stop: Also score *stop* (ending a slate early) from the context, as a last column.
    """

    def __init__(
        self,
        context_dim: int,
        n_candidates: int,
        width: int,
        hidden: Sequence[int] = (128,),
        activation_fn: type[nn.Module] = nn.Tanh,
        stop: bool = False,
    ) -> None:
        super().__init__()
        self.context_dim = int(context_dim)
        self.n_candidates = int(n_candidates)
        self.width = int(width)
        layers: list[nn.Module] = []
        last = self.width + self.context_dim
        for size in hidden:
            layers += [nn.Linear(last, int(size)), activation_fn()]
            last = int(size)
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Linear(last, 1)
        self.stop = nn.Linear(self.context_dim, 1) if stop else None

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Scores ``[batch, n_candidates]`` (``+ 1`` stop column) from an actor latent."""
        context = latent[:, : self.context_dim]
        candidates = latent[:, self.context_dim :].reshape(-1, self.n_candidates, self.width)
        expanded = context.unsqueeze(1).expand(-1, self.n_candidates, -1)
        x = self.hidden(torch.cat([candidates, expanded], dim=2))
        scores = self.out(x).squeeze(-1)
        if self.stop is None:
            return scores
        return torch.cat([scores, self.stop(context)], dim=1)
