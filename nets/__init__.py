"""Datasets, architectures, training and the per-sample score cache.

Importing `nets` does not import torch: training lives in `nets._torch`, loaded on demand.
"""

from nets._arch import FC, Architecture, ArchitectureError, Conv, Pool, ReLU
from nets._atomic import atomic_write_bytes, atomic_write_text
from nets._cache import CacheCorrupted, ScoreCache, build_scores, default_cache_dir, variant_key
from nets._data import Dataset, DatasetError, load_dataset, stratified_split
from nets._variant import SplitScores, TrainingConfig, Variant, VariantScores, scores_from_logits
from nets._zoo import UnknownArchitecture, architecture, architecture_names

__all__ = [
    "FC", "Architecture", "ArchitectureError", "CacheCorrupted", "Conv", "Dataset", "DatasetError", "Pool",
    "ReLU", "ScoreCache", "SplitScores", "TrainingConfig", "UnknownArchitecture", "Variant", "VariantScores",
    "architecture", "architecture_names", "atomic_write_bytes", "atomic_write_text", "build_scores",
    "default_cache_dir", "load_dataset", "scores_from_logits", "stratified_split", "variant_key",
]
