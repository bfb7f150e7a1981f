"""Datasets, architectures, training and the per-sample score cache; this module is their public API.

Subpackages: `nets.data` (datasets and splits), `nets.models` (layer lists, shipped and declared networks, exits),
`nets.scores` (variants, their transforms and the score cache), `nets.training` (torch: build, train, quantize) and
`nets.effort` (effort knobs, numpy only). Importing `nets` does not import torch: `nets.training` is loaded on demand.
"""

from costmodel import UserError
from nets.models._arch import (FC, Add, Architecture, ArchitectureError, BatchNorm, Conv, Flatten, GlobalPool, Layer,
                               Pool, ReLU, architecture_from_table)
from nets.scores._atomic import atomic_write_bytes, atomic_write_text
from nets.scores._build import build_scores, cached_golden, check_variant, range_images
from nets.models._confidence import CRITERIA, CriterionError, confidence
from nets.scores._cache import CacheCorrupted, ScoreCache, variant_key, weights_key
from nets.scores._cache_dir import default_cache_dir
from nets.data._data import Dataset, DatasetError, content_digest, stratified_split
from nets.effort._effort import KNOBS, EffortError, resolve_knobs
from nets.models._exits import (ExitError, Exits, branch_points, check_exits, check_given_branch, exit_architecture,
                                resolve_points, tap_step, waiting_tensors)
from nets.models._imported import (ImportedArrays, ImportedLogits, ImportedModelError, file_digest, imported_scores,
                                   load_labels, load_logits, split_scores)
from nets.models._increments import IncrementalError, check_increments
from nets.data._loaders import labels_dataset, load_dataset
from nets.scores._summary import LogitSummary
from nets.scores._transforms import Transform
from nets.models._models import Model, takes_transforms
from nets.models._onnx import OnnxModel, check_class_count, check_output_size, load_onnx, onnx_logits
from nets.scores._scores import SplitScores, scores_from_logits
from nets.scores._variant import TrainingConfig, Variant, VariantScores
from nets.models._zoo import UnknownArchitecture, architecture, architecture_names

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
