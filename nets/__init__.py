"""Datasets, architectures, training and the per-sample score cache.

Importing `nets` does not import torch: training lives in `nets._torch`, loaded on demand.
"""

from costmodel import UserError
from nets._arch import FC, Architecture, ArchitectureError, Conv, Pool, ReLU
from nets._atomic import atomic_write_bytes, atomic_write_text
from nets._build import build_scores, cached_golden
from nets._cache import CacheCorrupted, ScoreCache, default_cache_dir, variant_key, weights_key
from nets._effort import KNOBS, EffortError, resolve_knobs
from nets._increments import IncrementalError, check_increments
from nets._data import Dataset, DatasetError, content_digest, stratified_split
from nets._loaders import load_dataset
from nets._variant import SplitScores, TrainingConfig, Variant, VariantScores, scores_from_logits
from nets._zoo import UnknownArchitecture, architecture, architecture_names

__all__ = [
    "FC", "Architecture", "ArchitectureError", "CacheCorrupted", "Conv", "Dataset", "DatasetError", "Pool",
    "EffortError", "IncrementalError", "KNOBS", "UserError", "resolve_knobs", "cached_golden", "check_increments", "content_digest", "weights_key",
    "ReLU", "ScoreCache", "SplitScores", "TrainingConfig", "UnknownArchitecture", "Variant", "VariantScores",
    "architecture", "architecture_names", "atomic_write_bytes", "atomic_write_text", "build_scores",
    "default_cache_dir", "load_dataset", "scores_from_logits", "stratified_split", "variant_key",
]
