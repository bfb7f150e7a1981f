"""Datasets, architectures, training and the per-sample score cache.

Importing `nets` does not import torch: training lives in `nets._torch` (public: `nets.training`), loaded on demand.
"""

from costmodel import UserError
from nets._arch import (FC, Add, Architecture, ArchitectureError, BatchNorm, Conv, Flatten, GlobalPool, Layer, Pool,
                        ReLU, architecture_from_table)
from nets._atomic import atomic_write_bytes, atomic_write_text
from nets._build import build_scores, cached_golden, check_variant, range_images
from nets._confidence import CRITERIA, CriterionError, confidence
from nets._cache import CacheCorrupted, ScoreCache, variant_key, weights_key
from nets._cache_dir import default_cache_dir
from nets._data import Dataset, DatasetError, content_digest, stratified_split
from nets._effort import KNOBS, EffortError, resolve_knobs
from nets._exits import (ExitError, Exits, branch_points, check_exits, check_given_branch, exit_architecture,
                         resolve_points, tap_step, waiting_tensors)
from nets._imported import (ImportedArrays, ImportedLogits, ImportedModelError, file_digest, imported_scores, load_labels, load_logits,
                            split_scores)
from nets._increments import IncrementalError, check_increments
from nets._loaders import labels_dataset, load_dataset
from nets._summary import LogitSummary
from nets._transforms import Transform
from nets._models import Model, takes_transforms
from nets._onnx import OnnxModel, check_class_count, check_output_size, load_onnx, onnx_logits
from nets._scores import SplitScores, scores_from_logits
from nets._variant import TrainingConfig, Variant, VariantScores
from nets._zoo import UnknownArchitecture, architecture, architecture_names

__all__ = [
    "range_images",
    "CRITERIA", "FC", "KNOBS", "Add", "Architecture", "ArchitectureError", "BatchNorm", "CacheCorrupted", "Conv",
    "CriterionError", "Dataset", "DatasetError", "EffortError", "ExitError", "Exits", "Flatten", "GlobalPool",
    "ImportedArrays", "ImportedLogits", "ImportedModelError", "IncrementalError", "Layer", "LogitSummary", "Model", "OnnxModel", "Pool", "ReLU",
    "ScoreCache", "SplitScores", "TrainingConfig", "Transform", "UnknownArchitecture", "UserError", "Variant", "VariantScores",
    "architecture", "architecture_from_table", "architecture_names", "branch_points", "atomic_write_bytes", "atomic_write_text",
    "build_scores", "cached_golden", "check_class_count", "check_exits", "check_given_branch", "check_increments",
    "check_output_size", "check_variant", "confidence", "content_digest", "default_cache_dir",
    "exit_architecture", "file_digest", "imported_scores", "labels_dataset", "load_dataset", "load_labels",
    "load_logits", "load_onnx", "onnx_logits", "resolve_knobs", "resolve_points", "scores_from_logits", "split_scores",
    "stratified_split", "takes_transforms", "tap_step", "variant_key", "waiting_tensors", "weights_key",
]
