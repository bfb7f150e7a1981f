"""Datasets, architectures, training and the per-sample score cache.

Importing `nets` does not import torch: training lives in `nets._torch`, loaded on demand.
"""

from nets._arch import (FC, Add, Architecture, ArchitectureError, BatchNorm, Conv, Flatten, GlobalPool, Pool, ReLU,
                        architecture_from_table)
from nets._atomic import atomic_write_bytes, atomic_write_text
from nets._cache import CacheCorrupted, ScoreCache, build_scores, default_cache_dir, variant_key
from nets._data import Dataset, DatasetError, load_dataset, stratified_split
from nets._imported import (ImportedArrays, ImportedModelError, file_digest, imported_scores, load_labels, load_logits,
                            split_scores)
from nets._onnx import OnnxModel, check_class_count, load_onnx, onnx_logits
from nets._variant import SplitScores, TrainingConfig, Variant, VariantScores, scores_from_logits
from nets._zoo import UnknownArchitecture, architecture, architecture_names

__all__ = [
    "FC", "Add", "Architecture", "ArchitectureError", "BatchNorm", "CacheCorrupted", "Conv", "Dataset", "DatasetError",
    "Flatten", "GlobalPool", "ImportedArrays", "ImportedModelError", "OnnxModel", "Pool", "ReLU", "ScoreCache",
    "SplitScores", "TrainingConfig", "UnknownArchitecture", "Variant", "VariantScores", "architecture",
    "architecture_from_table", "architecture_names", "atomic_write_bytes", "atomic_write_text", "build_scores",
    "check_class_count", "default_cache_dir", "file_digest", "imported_scores", "load_dataset", "load_labels",
    "load_logits", "load_onnx", "onnx_logits", "scores_from_logits", "split_scores", "stratified_split",
    "variant_key",
]
