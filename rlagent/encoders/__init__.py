"""Text encoders: offline model resolution, the BERT features extractor and its cache."""

from rlagent.encoders.bow import BagOfWordsExtractor
from rlagent.encoders.cache import CacheInfo, EmbeddingCache
from rlagent.encoders.dtypes import ENCODER_DTYPES, EncoderDtypeError, normalize_encoder_dtype
from rlagent.encoders.extractor import (
    DTYPES,
    ENCODER_MODES,
    POOLINGS,
    FeaturesLayout,
    ObservationLayoutError,
    TextFeaturesExtractor,
    cpu_supports_bf16,
    is_pretrained_module,
)
from rlagent.encoders.int8 import (
    DEFAULT_INT8_SCHEME,
    Int8Encoder,
    Int8Scheme,
    build_int8_encoder,
    int8_cache_dir,
    onnxruntime_available,
)
from rlagent.encoders.loading import (
    DEFAULT_ENCODER,
    Encoder,
    EncoderChecksumError,
    EncoderNotFoundError,
    encoder_checksum,
    load_encoder,
    load_tokenizer,
    resolve_encoder_path,
)
from rlagent.encoders.tiny import TINY_RANDOM

__all__ = [
    "DEFAULT_ENCODER",
    "DEFAULT_INT8_SCHEME",
    "ENCODER_DTYPES",
    "EncoderDtypeError",
    "Int8Encoder",
    "Int8Scheme",
    "build_int8_encoder",
    "int8_cache_dir",
    "normalize_encoder_dtype",
    "onnxruntime_available",
    "DTYPES",
    "ENCODER_MODES",
    "POOLINGS",
    "BagOfWordsExtractor",
    "CacheInfo",
    "EmbeddingCache",
    "FeaturesLayout",
    "ObservationLayoutError",
    "TextFeaturesExtractor",
    "cpu_supports_bf16",
    "is_pretrained_module",
    "TINY_RANDOM",
    "Encoder",
    "EncoderChecksumError",
    "EncoderNotFoundError",
    "encoder_checksum",
    "load_encoder",
    "load_tokenizer",
    "resolve_encoder_path",
]
