"""Building a variant's scores: train its weights once per training key, score the calib and test splits; a
declared model that is not trained is scored from its logits file or by onnxruntime. Processes sharing a cache
directory claim each key before building it (`nets.scores._claims`), so each is trained and scored once.

Scoring applies every transform the variant carries (width or increments, bits, knobs) and records which it
applied, so that a study can check that what it scores is what it prices.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from typing import Callable, Sequence

import numpy as np

from nets.scores._cache import SCORED_SPLITS, CacheCorrupted, ScoreCache, variant_key, weights_key
from nets.scores._claims import BUILT, claim, claimed, share
from nets.data._data import Dataset
from nets.models._imported import ImportedModelError, split_scores, store_summaries
from nets.models._models import Model
from nets.models._onnx import check_output_size, onnx_logits
from nets.scores._orphan import die_with_parent
from nets.scores._scores import SplitScores, scores_from_logits
from nets.scores._variant import TrainingConfig, Variant, VariantScores

MODEL_CODE_VERSION = "1"


def train_weights(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str, root: str) -> str:
    """Train the weights `variant` runs (seeded, deterministic, one thread) and store them; returns `key`."""
    import torch

    from nets.training._torch import init_module, train_module

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    trained = variant.training
    model = trained.model
    if trained.exits is not None and model is not None and model.onnx is not None:
        from nets.training._exits_torch import train_onnx_branches

        state, seconds = train_onnx_branches(model, trained.exits, *dataset.split("train"), config)
    elif trained.exits is not None:
        from nets.training._exits_torch import train_branched

        frozen = cached_golden(ScoreCache(root), dataset, trained, config)(trained.width) \
            if trained.exits.training == "frozen" else None
        state, seconds = train_branched(trained.architecture, trained.exits, *dataset.split("train"), config, frozen)
    elif trained.increments:
        from nets.training._incremental import train_incremental

        state, seconds = train_incremental(trained.architecture, trained.increments, dataset, config,
                                           golden=cached_golden(ScoreCache(root), dataset, trained, config))
    else:
        module = init_module(trained.architecture, trained.width, config.seed)
        seconds = train_module(module, *dataset.split("train"), config)
        state = module.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    ScoreCache(root).store_weights(key, trained, buffer.getvalue(), {"train_seconds": round(seconds, 3)})
    return key

def cached_golden(cache: ScoreCache, dataset: Dataset, net: Variant, config: TrainingConfig) -> Callable[[float], dict]:
    """Golden-model weights of the plain net under `net` (its name and model), by width: from `cache`, trained and stored there when
    missing."""

    def golden(width: float) -> dict:
        import torch

        variant = Variant(net.net, width, model=net.model)
        key = weights_key(dataset, variant, config)
        with claim(cache.root, key, wait=True):  # another process may be training it: wait, then load
            if _checked(cache.load_weights, key) is None:
                train_weights(dataset, variant, config, key, str(cache.root))
            data = cache.load_weights(key)
        return torch.load(io.BytesIO(data), weights_only=True)

    return golden


def _checked(load: Callable, *args: object) -> object:
    """What `load(*args)` reads from the cache, or None when the entry is missing or corrupted."""
    try:
        return load(*args)
    except (FileNotFoundError, CacheCorrupted):
        return None


def _train_claimed(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str, root: str) -> tuple:
    """`train_weights` under the claim on `key` (see `nets.scores._claims.claimed`)."""
    return claimed(root, key, lambda: _checked(ScoreCache(root).load_weights, key),
                   lambda: train_weights(dataset, variant, config, key, root))


def _score_claimed(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str, root: str) -> tuple:
    """`score_variant` under the claim on `key` (see `nets.scores._claims.claimed`)."""
    return claimed(root, key, lambda: _checked(ScoreCache(root).load, key, variant, dataset),
                   lambda: score_variant(dataset, variant, config, key, root))



def range_images(dataset: Dataset) -> np.ndarray:
    """The images activation and knob ranges are fitted on: training images (as many as the calibration split has),
    never calibration or test rows, which certify and measure the result and must not have shaped it."""
    return dataset.split("train")[0][:len(dataset.labels["calib"])]


def evaluate_split(module, variant: Variant, dataset: Dataset, split: str) -> tuple[SplitScores, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    """Run `variant` on one split with every post-training transform it carries: knobs (per-sample ops) and bits
    compose in the effort path; bits alone run the quantized torch module. Returns the rows and the transforms
    applied, in `Variant.transforms` order."""
    from nets.training._torch import predict_logits

    images, labels = dataset.split(split)
    ranges = range_images(dataset)
    built = tuple(name for name in ("width", "increments", "exits") if name in variant.transforms)  # by the module
    built += tuple(transform.name for transform in variant.extra)  # a mechanism's own, applied to the module
    if variant.knobs:
        from nets.effort._effort import effort_logits

        logits, ops = effort_logits(module, variant, images, ranges)
        applied = built + (("bits", "rounding") if variant.bits is not None else ()) + ("knobs",)
        return scores_from_logits(logits, labels, ops), applied
    if variant.bits is not None:
        from nets.training._quant import quantized_logits

        logits = quantized_logits(module, variant, images, ranges)
        return scores_from_logits(logits, labels), built + ("bits", "rounding")
    return scores_from_logits(predict_logits(module, images), labels), built


def score_variant(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str, root: str) -> VariantScores:
    """Load the variant's weights, score the calib and test splits, and store the rows."""
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cache = ScoreCache(root)
    state = torch.load(io.BytesIO(cache.load_weights(weights_key(dataset, variant, config))), weights_only=True)
    model = variant.model
    if model is not None and model.onnx is not None:  # a branch on an ONNX trunk (`check_variant`)
        from nets.training._exits_torch import onnx_exit_logits

        scored = {split: (scores_from_logits(onnx_exit_logits(model, variant.exits, state, dataset.split(split)[0]),
                                             dataset.split(split)[1]), ("exits",)) for split in SCORED_SPLITS}
    else:
        scored = {split: evaluate_split(_module(variant, config, state), variant, dataset, split)
                  for split in SCORED_SPLITS}
    return cache.store(key, variant, {split: rows for split, (rows, _) in scored.items()}, scored["calib"][1],
                       {"weights_key": weights_key(dataset, variant, config),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _module(variant: Variant, config: TrainingConfig, state: dict):  # type: ignore[no-untyped-def]
    """The torch module `variant` runs, with its trained weights `state`, in eval mode."""
    from nets.training._torch import init_module

    if variant.exits is not None:
        from nets.training._exits_torch import branched_module, exit_module

        trunk = variant.training.architecture
        branched = branched_module(trunk, variant.exits)
        branched.load_state_dict(state)
        module = exit_module(branched, trunk, variant.exits)
    elif variant.increments:
        from nets.training._incremental import stage_module

        module = stage_module(variant.architecture, variant.increments, variant.width, state)
    else:
        module = init_module(variant.architecture, variant.width, config.seed)
        module.load_state_dict(state)
    module.eval()
    for transform in variant.extra:  # a mechanism's own transforms, on the trained module
        module = transform.module(module)
    return module


def check_variant(variant: Variant) -> None:
    """Refuse a variant that transforms a model scored or priced as given (ONNX, logits, measured price); an ONNX
    model priced by the cost model takes frozen-trunk exits and nothing else."""
    model = variant.model
    if model is None or model.takes_transforms or not variant.transforms:
        return
    if model.scored_by == "onnx" and not model.measured and variant.exits is not None:
        other = [name for name in variant.transforms if name != "exits"]
        if variant.exits.training != "frozen":
            raise ImportedModelError(f"model '{model.name}' cannot run as {variant.name}: it is scored by onnxruntime "
                                     "as exported, so its exits train on the frozen trunk (exits.training = "
                                     "\"frozen\")")
        if not other:
            return
        raise ImportedModelError(f"model '{model.name}' cannot run as {variant.name}: it is scored by onnxruntime as "
                                 f"exported, so its exits run on the trunk as exported, without {', '.join(other)}")
    why = {"logits": "its scores come from a logits file", "onnx": "it is scored by onnxruntime as exported"}.get(
        model.scored_by, "its price is measured (energy_j)")
    raise ImportedModelError(f"model '{model.name}' cannot run as {variant.name}: {why}, so it cannot take "
                             f"{', '.join(variant.transforms)} (only a layer-list model priced by the cost model can)")


def model_key(dataset: Dataset, model: Model) -> str:
    """Cache key of a model's scores: the dataset's content id, the model files' SHA-256 and the input scaling."""
    payload = {"dataset": dataset.dataset_id, "splits": {name: len(labels) for name, labels in dataset.labels.items()},
               "scored_by": model.scored_by, "digest": model.digest, "input_mean": model.input_mean,
               "input_std": model.input_std, "code_version": MODEL_CODE_VERSION}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def imported_scores_of(dataset: Dataset, variant: Variant, model: Model, cache: ScoreCache) -> VariantScores:
    """Scores of a model that is not trained: read from its logits file, or run by onnxruntime (and cached)."""
    key = model_key(dataset, model)
    if model.logits is not None:
        labels = {split: dataset.labels[split] for split in SCORED_SPLITS}
        splits = split_scores(model.logits.splits, labels, model.logits.source, dataset.source or dataset.dataset_id,
                              dataset.num_classes if dataset.images else None)
        store_summaries(model.logits, cache.root)  # checked against the labels: the next run only hashes the files
        return VariantScores(variant, key, splits)
    assert model.onnx is not None
    try:
        return cache.load(key, variant, dataset)
    except (FileNotFoundError, CacheCorrupted):
        pass
    check_output_size(model.onnx.architecture, dataset.num_classes, model.onnx.path)
    splits = {split: scores_from_logits(onnx_logits(model.onnx, dataset.images[split], model.input_mean,
                                                    model.input_std), dataset.labels[split])
              for split in SCORED_SPLITS}
    return cache.store(key, variant, splits, (), {"onnx_sha256": model.onnx.digest,
                                                  "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _parallel(jobs: list[tuple], n_jobs: int):  # type: ignore[no-untyped-def]
    """Run `function(*args)` for each (function, *args) tuple in `jobs` through joblib (imported only when there is
    work), yielding results as they finish; worker processes exit when this process dies. The variants carry their
    declared models to the workers."""
    from joblib import Parallel, delayed

    tasks = [delayed(job[0])(*job[1:]) for job in jobs]
    workers = min(n_jobs if n_jobs > 0 else os.cpu_count() or 1, len(jobs))
    if workers == 1:
        return Parallel(n_jobs=1, return_as="generator_unordered")(tasks)
    return Parallel(n_jobs=workers, return_as="generator_unordered", initializer=die_with_parent,
                    initargs=(os.getpid(),))(tasks)


def build_scores(dataset: Dataset, variants: Sequence[Variant], config: TrainingConfig,
                 cache: ScoreCache, n_jobs: int = -1,
                 log: Callable[[str], None] = print) -> dict[Variant, VariantScores]:
    """Scores of every variant: loaded from the cache when valid, else trained and scored in parallel (joblib).

    Two phases: every missing weight set is trained once (variants differing only in bit-width or
    knobs share one), then every missing variant is scored.
    """
    results: dict[Variant, VariantScores] = {}
    to_score: list[tuple[Variant, str]] = []
    for variant in dict.fromkeys(variants):
        check_variant(variant)
        model = variant.model
        if model is not None and model.scored_by != "training" and variant.exits is None:
            results[variant] = imported_scores_of(dataset, variant, model, cache)
            continue
        key = variant_key(dataset, variant, config)
        try:
            results[variant] = cache.load(key, variant, dataset)
            continue
        except FileNotFoundError:
            pass
        except CacheCorrupted as exc:
            log(f"cache: {variant.name}: {exc}; rebuilding")
        to_score.append((variant, key))
    to_train: dict[str, Variant] = {}
    for variant, _ in to_score:
        wkey = weights_key(dataset, variant, config)
        try:
            cache.load_weights(wkey)
        except FileNotFoundError:
            to_train[wkey] = variant.training
        except CacheCorrupted as exc:
            log(f"cache: {variant.training.name} weights: {exc}; retraining")
            to_train[wkey] = variant.training
    log(f"cache {cache.root}: {len(results)} of {len(results) + len(to_score)} variants cached; "
        f"{len(to_train)} to train, {len(to_score)} to score")
    start = time.perf_counter()
    root = str(cache.root)

    def jobs(function: Callable, todo: dict[str, Variant]) -> Callable[[list[str]], object]:
        """Run `function` on the given keys of `todo` in parallel, each under its claim."""
        return lambda keys: _parallel([(function, dataset, todo[key], config, key, root) for key in keys],
                                      n_jobs)

    def waiting(todo: dict[str, Variant], what: str) -> Callable[[str], None]:
        return lambda key: log(f"  waiting for another process {what} {todo[key].name}")

    # ordinary weights first: incremental training and frozen trunks start from the plain nets they may include
    builds_on = {key: bool(v.increments) or v.exits is not None for key, v in to_train.items()}
    for phase in ([k for k in to_train if not builds_on[k]], [k for k in to_train if builds_on[k]]):
        for key, outcome, _ in share(phase, jobs(_train_claimed, to_train), root, waiting(to_train, "training")):
            done = "trained" if outcome == BUILT else "trained by another process:"
            log(f"  {done} {to_train[key].name} ({time.perf_counter() - start:.0f}s)")
    if to_score:
        todo = {key: variant for variant, key in to_score}
        for _, outcome, scores in share(list(todo), jobs(_score_claimed, todo), root, waiting(todo, "scoring")):
            results[scores.variant] = scores
            by = "" if outcome == BUILT else ", scored by another process"
            log(f"  {scores.variant.name:>12}: calib acc {scores.splits['calib'].accuracy:.2%}, "
                f"test acc {scores.splits['test'].accuracy:.2%} ({time.perf_counter() - start:.0f}s{by})")
        with claim(root, "manifest", wait=True):  # one rebuild at a time: the last one sees every process's entries
            cache.write_manifest()
    return {variant: results[variant] for variant in variants}
