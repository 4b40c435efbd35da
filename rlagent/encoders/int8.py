"""Int8 copies of a frozen encoder: ONNX Runtime dynamic quantisation, else torch's.

:func:`build_int8_encoder` exports the encoder (float32, on the CPU) to ONNX with the TorchScript
exporter (``torch.onnx.export(..., dynamo=False)``, which needs no ``onnxscript``), checks the
exported graph against torch, and quantises the weights of the chosen linear layers to 8 bits
with ``onnxruntime.quantization.quantize_dynamic`` (activations are quantised per batch at run
time). The graph returns every hidden state, so the extractor pools the same layers as in fp32.
The quantised file is cached under :func:`int8_cache_dir`, keyed by the encoder's checksum,
the scheme and the library versions, and reused by later runs.

Without ``onnxruntime`` (``pip install rlagent[int8]``) the same layers are quantised with
``torch.ao.quantization.quantize_dynamic``, which PyTorch has deprecated; a ``FutureWarning``
says so.

Which layers: quantising every linear layer of all-MiniLM-L6-v2 put embeddings of
customer-service test utterances as low as cosine 0.988 of fp32 (per-channel weights; 0.935
per-tensor), under the 0.99 the acceptance gate asks for; the feed-forward layers caused most
of it. :data:`DEFAULT_INT8_SCHEME` quantises the attention projections only, per output
channel, with unsigned 8-bit weights (docs/performance.md has the figures).
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rlagent.encoders.dtypes import EncoderDtypeError
from rlagent.encoders.loading import Encoder

__all__ = [
    "DEFAULT_INT8_SCHEME",
    "INT8_BACKENDS",
    "INT8_MODULES",
    "Int8Encoder",
    "Int8Scheme",
    "build_int8_encoder",
    "int8_cache_dir",
    "onnxruntime_available",
]

#: Which linear layers get int8 weights (see :class:`Int8Scheme`).
INT8_MODULES: tuple[str, ...] = ("attention", "attention+intermediate", "all", "none")
#: Int8 backends: ``"auto"`` is ONNX Runtime where installed, torch otherwise.
INT8_BACKENDS: tuple[str, ...] = ("auto", "onnxruntime", "torch")
_WEIGHT_TYPES = ("uint8", "int8")
_FORMAT = 1  # bump when the exported graph changes
_OPSET = 17
_INSTALL_HINT = "pip install rlagent[int8] (or pip install onnx onnxruntime)"


@dataclass(frozen=True)
class Int8Scheme:
    """What an int8 encoder quantises.

    Attributes:
        modules: Linear layers whose weights become 8-bit: ``"attention"`` (the query, key,
            value and attention-output projections: layers under a module named
            ``attention``), ``"attention+intermediate"`` (also the first feed-forward layer),
            ``"all"`` (every linear layer), or ``"none"`` (nothing: the float32 ONNX graph, to
            tell ONNX Runtime's own speed from quantisation's). Embeddings are never quantised.
        per_channel: One scale per output channel of a weight matrix (else one per matrix).
        weight_type: ``"uint8"`` or ``"int8"`` weights (ONNX Runtime; torch uses int8).
    """

    modules: str = "attention"
    per_channel: bool = True
    weight_type: str = "uint8"

    def __post_init__(self) -> None:
        if self.modules not in INT8_MODULES:
            raise ValueError(
                f"Int8Scheme.modules = {self.modules!r}; expected one of "
                f"{', '.join(map(repr, INT8_MODULES))}"
            )
        if self.weight_type not in _WEIGHT_TYPES:
            raise ValueError(
                f"Int8Scheme.weight_type = {self.weight_type!r}; expected 'uint8' or 'int8'"
            )
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"Int8Scheme.per_channel = {self.per_channel!r}; expected a bool")

    @property
    def key(self) -> str:
        """A short name, e.g. ``"attention-channel-uint8"``."""
        grain = "channel" if self.per_channel else "tensor"
        return f"{self.modules.replace('+', '_')}-{grain}-{self.weight_type}"


#: The scheme int8 encoders use unless told otherwise.
DEFAULT_INT8_SCHEME = Int8Scheme()


def onnxruntime_available() -> bool:
    """Whether ``onnx`` and ``onnxruntime`` are importable (the preferred int8 backend)."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def int8_cache_dir() -> Path:
    """The folder that keeps quantised encoders.

    ``$RLAGENT_CACHE_DIR/int8`` when that variable is set, else ``$XDG_CACHE_HOME/rlagent/int8``,
    else ``~/.cache/rlagent/int8``. Delete it to rebuild every int8 encoder.
    """
    root = os.environ.get("RLAGENT_CACHE_DIR")
    if root:
        return Path(root).expanduser() / "int8"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rlagent" / "int8"


class Int8Encoder:
    """An encoder whose chosen linear layers run in int8, returning hidden states as float32.

    Built by :func:`build_int8_encoder`; holds no reference to the float32 model. Runs on the
    CPU whatever the extractor's device.

    Attributes:
        backend: ``"onnxruntime"`` or ``"torch"``.
        scheme: The :class:`Int8Scheme`.
        path: The quantised ONNX file (``None`` for torch).
        num_hidden_layers: Transformer layers of the encoder (hidden states are
            ``0..num_hidden_layers``, 0 being the embeddings).
    """

    def __init__(
        self,
        *,
        backend: str,
        scheme: Int8Scheme,
        num_hidden_layers: int,
        session: Any = None,
        module: nn.Module | None = None,
        path: Path | None = None,
    ) -> None:
        self.backend = backend
        self.scheme = scheme
        self.path = path
        self.num_hidden_layers = int(num_hidden_layers)
        self._session = session
        self._module = module
        self._outputs = None if session is None else [o.name for o in session.get_outputs()]

    def __deepcopy__(self, memo: dict[int, Any]) -> Int8Encoder:
        return self  # immutable and thread-safe to run; an ONNX Runtime session cannot be copied

    def _indices(self, layers: Sequence[int] | None) -> list[int]:
        if layers is None:
            return [self.num_hidden_layers]
        return [int(layer) % (self.num_hidden_layers + 1) for layer in layers]

    def hidden_states(
        self, ids: torch.Tensor, mask: torch.Tensor, layers: Sequence[int] | None = None
    ) -> list[torch.Tensor]:
        """The hidden states ``layers`` (``None``: the last one) of a batch.

        Args:
            ids: ``[N, L]`` token ids.
            mask: ``[N, L]`` attention mask.
            layers: Indices into the hidden states (0: embeddings, -1: last layer).

        Returns:
            One ``[N, L, hidden]`` float32 CPU tensor per requested layer, in order.
        """
        indices = self._indices(layers)
        ids = ids.detach().to("cpu", torch.int64)
        mask = mask.detach().to("cpu", torch.int64)
        if self._session is not None:
            feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
            names = [self._outputs[i] for i in indices]
            return [torch.from_numpy(np.asarray(x)) for x in self._session.run(names, feed)]
        with torch.no_grad():
            out = self._module(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        return [out.hidden_states[i].float() for i in indices]


def build_int8_encoder(
    encoder: Encoder,
    *,
    scheme: Int8Scheme | None = None,
    backend: str = "auto",
    cache_dir: str | os.PathLike | None = None,
    num_threads: int | None = None,
) -> Int8Encoder:
    """An int8 copy of ``encoder`` (its float32 model is left as it is).

    Args:
        encoder: A loaded encoder with float32 weights (:func:`rlagent.encoders.load_encoder`).
        scheme: What to quantise; :data:`DEFAULT_INT8_SCHEME` by default.
        backend: ``"auto"`` (ONNX Runtime where installed, else torch), ``"onnxruntime"`` or
            ``"torch"``.
        cache_dir: Where quantised ONNX files are kept; :func:`int8_cache_dir` by default.
        num_threads: ONNX Runtime intra-op threads; torch's current count by default.

    Returns:
        The :class:`Int8Encoder`.

    Raises:
        EncoderDtypeError: The weights are not float32, the requested backend is not
            installed, no linear layer matches the scheme, or the encoder cannot be exported
            to ONNX faithfully (the message suggests bf16 or fp32 instead).
    """
    scheme = scheme or DEFAULT_INT8_SCHEME
    if backend not in INT8_BACKENDS:
        raise ValueError(f"backend = {backend!r}; expected one of {list(INT8_BACKENDS)}")
    weights = {p.dtype for p in encoder.model.parameters()}
    if weights != {torch.float32}:
        raise EncoderDtypeError(
            f"An int8 encoder is quantised from float32 weights; {encoder.name!r} has "
            f"{sorted(str(w) for w in weights)}. Load it again with load_encoder()."
        )
    layers = int(encoder.model.config.num_hidden_layers)
    if backend == "auto":
        backend = "onnxruntime" if onnxruntime_available() else "torch"
    if backend == "onnxruntime":
        if not onnxruntime_available():
            raise EncoderDtypeError(
                f"The int8 backend 'onnxruntime' needs onnx and onnxruntime; {_INSTALL_HINT}."
            )
        path = _quantised_file(encoder, scheme, Path(cache_dir or int8_cache_dir()))
        session = _session(path, num_threads or torch.get_num_threads())
        return Int8Encoder(
            backend=backend, scheme=scheme, num_hidden_layers=layers, session=session, path=path
        )
    why = "was asked for" if backend == "torch" else "is used because onnxruntime is missing"
    warnings.warn(
        f"int8 encoder: the torch backend {why}; it quantises with "
        "torch.ao.quantization.quantize_dynamic, which PyTorch has deprecated. For ONNX Runtime: "
        f"{_INSTALL_HINT}.",
        FutureWarning,
        stacklevel=2,
    )
    module = _torch_quantised(encoder.model, scheme)
    return Int8Encoder(backend="torch", scheme=scheme, num_hidden_layers=layers, module=module)


# ----------------------------------------------------------------------------- layer choice
def _kind(name: str) -> str:
    """``"attention"``, ``"intermediate"`` or ``"other"``: where a linear layer sits."""
    parts = name.replace("/", ".").split(".")
    if "attention" in parts:
        return "attention"
    if "intermediate" in parts:
        return "intermediate"
    return "other"


def _wanted(kind: str, modules: str) -> bool:
    if modules == "none":
        return False
    return (
        modules == "all"
        or kind == "attention"
        or (kind == "intermediate" and modules == "attention+intermediate")
    )


# ----------------------------------------------------------------------------- torch backend
def _torch_quantised(model: nn.Module, scheme: Int8Scheme) -> nn.Module:
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig
    from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if scheme.per_channel else default_dynamic_qconfig
    names = {
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and _wanted(_kind(name), scheme.modules)
    }
    source = copy.deepcopy(model).cpu().eval()
    if scheme.modules == "none":
        return source
    if not names:
        raise _no_layers(scheme)
    with warnings.catch_warnings():
        # Its own deprecation notes; build_int8_encoder has said it once.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return torch_quantize_dynamic(source, {n: qconfig for n in names}, dtype=torch.qint8)


def _no_layers(scheme: Int8Scheme) -> EncoderDtypeError:
    return EncoderDtypeError(
        f"No linear layer of this encoder matches Int8Scheme(modules={scheme.modules!r}) (layers "
        "are matched by the names 'attention' and 'intermediate' in their module path); use "
        "modules='all', or encoder_dtype 'bf16' or 'fp32'."
    )


# ----------------------------------------------------------------------------- ONNX backend
class _AllHiddenStates(nn.Module):
    """``(input_ids, attention_mask) -> every hidden state``: the graph that is exported."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple:
        out = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True
        )
        return tuple(out.hidden_states)


def _cache_key(encoder: Encoder, scheme: Int8Scheme) -> dict[str, Any]:
    import onnx
    import onnxruntime

    return {
        "format": _FORMAT,
        "encoder_checksum": encoder.checksum,
        "scheme": asdict(scheme),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opset": _OPSET,
    }


def _quantised_file(encoder: Encoder, scheme: Int8Scheme, root: Path) -> Path:
    """The cached quantised graph of ``encoder``, built first when missing."""
    key = _cache_key(encoder, scheme)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    folder = root / f"{encoder.checksum[:12]}-{scheme.key}-{digest}"
    path = folder / "encoder.onnx"
    if path.is_file():
        return path
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".building-", dir=root))
    try:
        fp32 = work / "encoder-fp32.onnx"
        _export(encoder, fp32)
        _check_export(encoder, fp32)
        out = work / "encoder.onnx"
        if scheme.modules == "none":
            fp32.rename(out)
        else:
            _quantise(fp32, out, scheme)
            fp32.unlink()
        (work / "info.json").write_text(json.dumps({**key, "name": encoder.name}, indent=1))
        work.chmod(0o755)
        try:
            work.rename(folder)  # atomic; another process may have built it meanwhile
        except OSError:
            if not path.is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def _example(encoder: Encoder, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    batch = encoder.tokenizer(list(texts), padding=True, return_tensors="pt")
    return batch["input_ids"], batch["attention_mask"]


def _export(encoder: Encoder, path: Path) -> None:
    model = encoder.model
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    wrapper = _AllHiddenStates(model).eval()
    # Two rows of different lengths: the traced graph keeps the attention mask.
    ids, mask = _example(encoder, ["a card payment was refunded twice", "hello"])
    outputs = [f"hidden_state_{i}" for i in range(int(model.config.num_hidden_layers) + 1)]
    axes = {name: {0: "batch", 1: "length"} for name in ["input_ids", "attention_mask", *outputs]}
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer and exporter notes about a traced graph
            torch.onnx.export(
                wrapper,
                (ids, mask),
                str(path),
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=_OPSET,
                do_constant_folding=True,
            )
    except Exception as err:  # noqa: BLE001  (the exporter raises many kinds)
        raise EncoderDtypeError(
            f"Encoder {encoder.name!r} could not be exported to ONNX for int8 "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}); use "
            "encoder_dtype 'bf16' or 'fp32'."
        ) from err


def _check_export(encoder: Encoder, path: Path) -> None:
    """Refuse an exported float32 graph that does not reproduce torch's hidden states."""
    session = _session(path, 1)
    texts = ["my card has not arrived yet and i need it", "thanks", "where is my refund?"]
    for batch in (texts, texts[:1]):
        ids, mask = _example(encoder, batch)
        with torch.no_grad():
            want = encoder.model(
                input_ids=ids.to(encoder.model.device),
                attention_mask=mask.to(encoder.model.device),
                output_hidden_states=True,
            ).hidden_states
        got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        keep = mask.bool().unsqueeze(-1).numpy()
        for index, (a, b) in enumerate(zip(got, want, strict=True)):
            b = b.float().cpu().numpy()
            err = float(np.abs(np.where(keep, a - b, 0.0)).max())
            scale = float(np.abs(np.where(keep, b, 0.0)).max()) or 1.0
            if not err <= 1e-3 * scale:
                raise EncoderDtypeError(
                    f"The ONNX export of encoder {encoder.name!r} does not reproduce hidden "
                    f"state {index} (max error {err:.3g} at scale {scale:.3g}); use "
                    "encoder_dtype 'bf16' or 'fp32'."
                )


class _DropPreprocessHint(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    hint = _DropPreprocessHint()
    logging.getLogger().addFilter(hint)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(hint)


def _quantise(source: Path, target: Path, scheme: Int8Scheme) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    weights = {init.name for init in graph.initializer}
    nodes = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and len(node.input) == 2
        and node.input[1] in weights
        and _wanted(_kind(node.name), scheme.modules)
    ]
    if not nodes:
        raise _no_layers(scheme)
    with _quiet_quantizer():
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=["MatMul"],
            nodes_to_quantize=nodes,
            per_channel=scheme.per_channel,
            weight_type=QuantType.QUInt8 if scheme.weight_type == "uint8" else QuantType.QInt8,
            extra_options={"MatMulConstBOnly": True},
        )


def _session(path: Path, num_threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, int(num_threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
