"""Choosing a trained agent's encoder dtype, and the gate an int8 encoder must pass first.

An int8 encoder (:mod:`rlagent.encoders.int8`) is an approximation of the float32 one the
agent was trained with. :func:`check_agreement` measures how close it is, on what the agent
will read: the cosine between int8 and fp32 pooled embeddings of test utterances, and the
share of test observations on which the int8 and fp32 policies take the same deterministic
action. :func:`resolve_encoder_dtype` is the gate a service calls before it serves in int8:
it switches the agent to int8 only when ``min cosine >= 0.99`` and ``action agreement >=
0.99``, and otherwise raises :class:`rlagent.encoders.EncoderDtypeError` with the figures.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from rlagent.encoders.dtypes import EncoderDtypeError, normalize_encoder_dtype
from rlagent.encoders.extractor import TextFeaturesExtractor
from rlagent.pipeline import NotATextModelError, observation_converter, pipeline_of

__all__ = [
    "AGREEMENT_OBSERVATIONS",
    "MIN_ACTION_AGREEMENT",
    "MIN_COSINE",
    "AgreementReport",
    "check_agreement",
    "encoder_dtype_of",
    "resolve_encoder_dtype",
    "set_encoder_dtype",
]

#: The gate's bar on the lowest cosine between int8 and fp32 embeddings of test utterances.
MIN_COSINE: float = 0.99
#: The gate's bar on the share of test observations where both policies act alike.
MIN_ACTION_AGREEMENT: float = 0.99
#: Test observations the gate compares actions on.
AGREEMENT_OBSERVATIONS: int = 1000
_TEXT_BATCH = 32  # texts per encoder call when comparing embeddings (a served batch)
_PREDICT_BATCH = 256


@dataclass(frozen=True)
class AgreementReport:
    """How closely an encoder dtype reproduces the fp32 encoder (:func:`check_agreement`).

    Attributes:
        dtype: The dtype compared with fp32 (``"int8"``, ``"bf16"``...).
        backend: What ran it: ``"onnxruntime"`` or ``"torch"`` for int8, ``"torch"`` else.
        n_texts: Distinct text segments whose embeddings were compared.
        min_cosine: Lowest cosine similarity between their pooled embeddings in ``dtype`` and
            in fp32 (all pooled layers concatenated, as the policy reads them).
        mean_cosine: Mean of those cosines.
        n_observations: Observations whose actions were compared (0 without an env).
        action_agreement: Share of them where the deterministic actions were equal, or
            ``None`` without an env.
        env: The environment the observations came from, with its keyword arguments.
        min_cosine_required: The bar on ``min_cosine``.
        action_agreement_required: The bar on ``action_agreement``.
        accepted: ``min_cosine >= min_cosine_required`` and, with an env,
            ``action_agreement >= action_agreement_required``.
    """

    dtype: str
    backend: str
    n_texts: int
    min_cosine: float
    mean_cosine: float
    n_observations: int
    action_agreement: float | None
    env: str | None
    min_cosine_required: float
    action_agreement_required: float
    accepted: bool

    def summary(self) -> str:
        """One line with the figures and the verdict."""
        text = (
            f"{self.dtype} ({self.backend}) vs fp32: embedding cosine min {self.min_cosine:.4f}, "
            f"mean {self.mean_cosine:.4f} over {self.n_texts} test texts"
        )
        if self.action_agreement is not None:
            text += (
                f"; same action on {self.action_agreement:.1%} of {self.n_observations} test "
                "observations"
            )
        verdict = "accepted" if self.accepted else "refused"
        bar = f"needs min cosine >= {self.min_cosine_required}"
        if self.action_agreement is not None:
            bar += f" and >= {self.action_agreement_required:.0%} same actions"
        return f"{text}: {verdict} ({bar})"

    def to_dict(self) -> dict[str, Any]:
        """A plain JSON-ready dict."""
        return asdict(self)


def _extractors(source: Any) -> list[TextFeaturesExtractor]:
    if isinstance(source, TextFeaturesExtractor):
        return [source]
    policy = getattr(source, "policy", None)
    found = (
        []
        if policy is None
        else [m for m in policy.modules() if isinstance(m, TextFeaturesExtractor)]
    )
    if not found:
        raise NotATextModelError(
            f"{type(source).__name__} has no TextFeaturesExtractor; pass a model built by "
            "rlagent.make_ppo or loaded by rlagent.load, or the extractor itself."
        )
    return found


def encoder_dtype_of(model: Any) -> str:
    """The encoder dtype a text agent runs in now: ``"fp32"``, ``"bf16"`` or ``"int8"``."""
    return _extractors(model)[0].active_dtype


def set_encoder_dtype(model: Any, dtype: str) -> None:
    """Run a text agent's encoder in ``dtype`` from now on, without any check.

    The model's saved settings follow, so :func:`rlagent.agents.save_model` records it. Use
    :func:`resolve_encoder_dtype` to switch to int8 only when it agrees with fp32.

    Args:
        model: A model from :func:`rlagent.make_ppo` or :func:`rlagent.load` (or an extractor).
        dtype: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"int8"`` (frozen encoders only).

    Raises:
        EncoderDtypeError: An unknown dtype, or int8 for a lora/full encoder.
    """
    for extractor in _extractors(model):
        extractor.set_encoder_dtype(dtype)
    policy = getattr(model, "policy", None)
    kwargs = getattr(policy, "features_extractor_kwargs", None)
    if isinstance(kwargs, dict):
        kwargs["dtype"] = normalize_encoder_dtype(dtype)
    spec = getattr(model, "rlagent_spec", None)
    if isinstance(spec, dict):
        spec["encoder_dtype"] = normalize_encoder_dtype(dtype)
        spec.pop("dtype", None)


# ----------------------------------------------------------------------------- observations
def _make_env(model: Any, env: Any, env_kwargs: Mapping[str, Any] | None) -> tuple[gym.Env, str]:
    if isinstance(env, gym.Env):
        label = getattr(getattr(env.unwrapped, "spec", None), "id", None) or type(env).__name__
        return env, label
    from rlagent.env_making import EnvKwargsError, check_env_kwargs, make_env

    if env_kwargs is None:
        spec = getattr(model, "rlagent_spec", None) or {}
        env_kwargs = dict(spec.get("env_kwargs") or {})
        try:
            check_env_kwargs(env, {**env_kwargs, "split": "test"})
        except EnvKwargsError:
            pass  # an env without splits
        else:
            env_kwargs["split"] = "test"
    made = make_env(env, env_kwargs)
    shown = " ".join(f"{k}={v}" for k, v in sorted(env_kwargs.items()))
    return made, f"{env} {shown}".strip()


def _to_env_action(action: Any, space: spaces.Space) -> Any:
    return int(action) if isinstance(space, spaces.Discrete) else action


def _collect(
    model: Any, env: gym.Env, n: int, seed: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """``n`` observations of seeded episodes (``seed``, ``seed + 1``...) acted in by ``model``."""
    convert = observation_converter(env, pipeline_of(model))
    observations: list[dict[str, np.ndarray]] = []
    actions = []
    episode = 0
    while len(observations) < n:
        raw, _ = env.reset(seed=seed + episode)
        episode += 1
        done = False
        while not done and len(observations) < n:
            obs = convert(raw)
            action, _ = model.predict(obs, deterministic=True)
            observations.append(obs)
            actions.append(np.asarray(action))
            raw, _, terminated, truncated, _ = env.step(_to_env_action(action, env.action_space))
            done = terminated or truncated
    batch = {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return batch, np.stack(actions)


def _predict(model: Any, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(batch.values())))
    out = []
    for start in range(0, n, _PREDICT_BATCH):
        part = {key: value[start : start + _PREDICT_BATCH] for key, value in batch.items()}
        action, _ = model.predict(part, deterministic=True)
        out.append(np.asarray(action).reshape(len(part[next(iter(part))]), -1))
    return np.concatenate(out)


def _segments(extractor: TextFeaturesExtractor, batch: Mapping[str, np.ndarray]) -> np.ndarray:
    """Distinct present text segments of a batch, as ``[M, 2, L]`` (ids, mask) rows."""
    rows = []
    for entry in extractor._text:
        ids = np.asarray(batch[entry.ids_key]).reshape(-1, entry.length).astype(np.int64)
        mask = np.asarray(batch[entry.mask_key]).reshape(-1, entry.length).astype(np.int64)
        present = mask.any(axis=1)
        rows.append(np.stack([ids[present] * mask[present], mask[present]], axis=1))
    if not rows:
        return np.zeros((0, 2, 1), dtype=np.int64)
    width = max(r.shape[-1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, 0), (0, width - r.shape[-1]))) for r in rows]
    return np.unique(np.concatenate(rows), axis=0)


def _tokenized(extractor: TextFeaturesExtractor, texts: Sequence[str], length: int) -> np.ndarray:
    tokens = extractor.__dict__["_tokenizer"](
        [str(t) for t in texts],
        padding="max_length",
        truncation=True,
        max_length=length,
        return_tensors="np",
    )
    ids, mask = tokens["input_ids"].astype(np.int64), tokens["attention_mask"].astype(np.int64)
    return np.unique(np.stack([ids * mask, mask], axis=1), axis=0)


def _cosines(extractor: TextFeaturesExtractor, rows: np.ndarray, dtype: str) -> np.ndarray:
    out = []
    for start in range(0, len(rows), _TEXT_BATCH):
        part = torch.from_numpy(rows[start : start + _TEXT_BATCH])
        ids, mask = part[:, 0], part[:, 1]
        reference = extractor.embed(ids, mask, dtype="fp32")
        other = extractor.embed(ids, mask, dtype=dtype)
        out.append(torch.nn.functional.cosine_similarity(other, reference, dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.ones(0)


# ----------------------------------------------------------------------------- the check
def check_agreement(
    source: Any,
    env: str | gym.Env | None = None,
    *,
    dtype: str = "int8",
    texts: Sequence[str] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    observations: int = AGREEMENT_OBSERVATIONS,
    seed: int = 0,
    min_cosine: float = MIN_COSINE,
    min_action_agreement: float = MIN_ACTION_AGREEMENT,
) -> AgreementReport:
    """Compare an encoder dtype with fp32 on test texts and, given an env, on test actions.

    With ``env``, ``observations`` observations are collected from seeded episodes (episode
    ``i`` reset with ``seed + i``) in which the fp32 policy acts deterministically; then the
    fp32 and ``dtype`` policies each choose a deterministic action for every one of them. The
    texts compared are ``texts`` when given, else the distinct text segments of those
    observations, exactly as the policy reads them (tokenized by the model's pipeline). The
    agent's own dtype is restored afterwards.

    Args:
        source: A text agent (:func:`rlagent.make_ppo`, :func:`rlagent.load`), or a
            :class:`rlagent.encoders.TextFeaturesExtractor` (texts only, no env).
        env: A raw env, or a registered id built with ``env_kwargs``; ``None``: texts only.
        dtype: The dtype to compare with fp32.
        texts: Texts to compare embeddings on (tokenized to the extractor's segment length).
        env_kwargs: Keyword arguments for an env id; by default the model's own, with
            ``split="test"`` where the env has splits.
        observations: Observations to compare actions on.
        seed: Seed of the first episode.
        min_cosine: Bar on the lowest cosine.
        min_action_agreement: Bar on the share of equal actions.

    Returns:
        The :class:`AgreementReport`.

    Raises:
        ValueError: No texts to compare (no env and no ``texts``), or ``observations < 1``.
        EncoderDtypeError: ``dtype`` is unknown, or int8 for a lora/full encoder.
    """
    wanted = normalize_encoder_dtype(dtype, what="dtype")
    extractors = _extractors(source)
    extractor = extractors[0]
    if wanted == "int8" and extractor.mode != "frozen":
        raise EncoderDtypeError(
            f"int8 needs a frozen encoder; this agent's encoder is {extractor.mode!r}."
        )
    if env is None and texts is None:
        raise ValueError("check_agreement needs texts, an env, or both, to compare on.")
    if observations < 1:
        raise ValueError(f"observations must be >= 1, got {observations}.")
    before = [e.dtype_setting for e in extractors]
    n_obs, agreement, label = 0, None, None
    rows = None
    try:
        if env is not None:
            if isinstance(source, TextFeaturesExtractor):
                raise ValueError("Comparing actions needs the model; pass it, not the extractor.")
            environment, label = _make_env(source, env, env_kwargs)
            for e in extractors:
                e.set_encoder_dtype("fp32")
            batch, _ = _collect(source, environment, int(observations), int(seed))
            reference = _predict(source, batch)
            for e in extractors:
                e.set_encoder_dtype(wanted)
            other = _predict(source, batch)
            for e in extractors:
                e.set_encoder_dtype("fp32")
            agreement = float(np.mean(np.all(reference == other, axis=1)))
            n_obs = len(reference)
            if texts is None:
                rows = _segments(extractor, batch)
        if texts is not None:
            length = extractor._text[0].length if extractor._text else 64
            rows = _tokenized(extractor, texts, length)
        if rows is None or len(rows) == 0:
            raise ValueError("No text to compare embeddings on (empty texts or observations).")
        cosines = _cosines(extractor, rows, wanted)
        backend = "torch"
        if wanted == "int8":
            backend = extractor.int8_encoder.backend
    finally:
        for e, setting in zip(extractors, before, strict=True):
            e.set_encoder_dtype(setting)
    low, mean = float(cosines.min()), float(cosines.mean())
    accepted = low >= min_cosine and (agreement is None or agreement >= min_action_agreement)
    return AgreementReport(
        dtype=wanted,
        backend=backend,
        n_texts=int(len(rows)),
        min_cosine=low,
        mean_cosine=mean,
        n_observations=n_obs,
        action_agreement=agreement,
        env=label,
        min_cosine_required=float(min_cosine),
        action_agreement_required=float(min_action_agreement),
        accepted=bool(accepted),
    )


def resolve_encoder_dtype(
    model: Any,
    env: str | gym.Env,
    dtype: str,
    *,
    env_kwargs: Mapping[str, Any] | None = None,
    observations: int = AGREEMENT_OBSERVATIONS,
    seed: int = 0,
    min_cosine: float = MIN_COSINE,
    min_action_agreement: float = MIN_ACTION_AGREEMENT,
) -> AgreementReport | None:
    """Switch a trained agent to ``dtype`` for serving, through the gate when it is int8.

    ``"int8"`` is checked first with :func:`check_agreement` (test utterances and 1,000 test
    observations by default) and used only when accepted. ``"fp32"``, ``"bf16"`` and
    ``"auto"`` are switched to without a check (bf16 keeps fp32's embeddings to about 4 digits
    of cosine; fp32 is the reference).

    Args:
        model: A text agent (:func:`rlagent.load`).
        env: The env it serves: a raw env or a registered id (see :func:`check_agreement`).
        dtype: ``"auto"``, ``"fp32"``, ``"bf16"`` or ``"int8"``.
        env_kwargs: See :func:`check_agreement`.
        observations: Test observations to compare actions on.
        seed: Seed of the first test episode.
        min_cosine: The bar on the lowest embedding cosine (keep the default for serving).
        min_action_agreement: The bar on the share of equal actions.

    Returns:
        The :class:`AgreementReport` for int8, ``None`` for the other dtypes.

    Raises:
        EncoderDtypeError: int8 did not pass the gate (the message gives the figures and
            suggests bf16 or fp32), int8 for a lora/full encoder, or an unknown dtype.
    """
    wanted = normalize_encoder_dtype(dtype, what="encoder dtype")
    if wanted != "int8":
        set_encoder_dtype(model, wanted)
        return None
    report = check_agreement(
        model,
        env,
        dtype="int8",
        env_kwargs=env_kwargs,
        observations=observations,
        seed=seed,
        min_cosine=min_cosine,
        min_action_agreement=min_action_agreement,
    )
    if not report.accepted:
        raise EncoderDtypeError(
            f"The int8 encoder does not agree with fp32 closely enough to serve this agent: "
            f"{report.summary()}. Serve with --encoder-dtype bf16 (or fp32) instead."
        )
    set_encoder_dtype(model, "int8")
    return report
