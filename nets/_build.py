"""Building a variant's scores: train its weights once per training key, score the calib and test splits.

Scoring applies every transform the variant carries (width or increments, bits, knobs) and records which it
applied, so that a study can check that what it scores is what it prices.
"""

from __future__ import annotations

import io
import os
import time
from typing import Callable, Sequence

from nets._cache import SCORED_SPLITS, CacheCorrupted, ScoreCache, variant_key, weights_key
from nets._data import Dataset
from nets._variant import SplitScores, TrainingConfig, Variant, VariantScores, scores_from_logits


def train_weights(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str, root: str) -> str:
    """Train the weights `variant` runs (seeded, deterministic, one thread) and store them; returns `key`."""
    import torch

    from nets._torch import init_module, train_module

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    trained = variant.training
    if trained.exits is not None:
        from nets._exits_torch import train_branched

        frozen = cached_golden(ScoreCache(root), dataset, trained.net, config)(trained.width) \
            if trained.exits.training == "frozen" else None
        state, seconds = train_branched(trained.architecture, trained.exits, *dataset.split("train"), config, frozen)
    elif trained.increments:
        from nets._incremental import train_incremental

        state, seconds = train_incremental(trained.architecture, trained.increments, dataset, config,
                                           golden=cached_golden(ScoreCache(root), dataset, trained.net, config))
    else:
        module = init_module(trained.architecture, trained.width, config.seed)
        seconds = train_module(module, *dataset.split("train"), config)
        state = module.state_dict()
    buffer = io.BytesIO()
    torch.save(state, buffer)
    ScoreCache(root).store_weights(key, trained, buffer.getvalue(), {"train_seconds": round(seconds, 3)})
    return key

def cached_golden(cache: ScoreCache, dataset: Dataset, net: str, config: TrainingConfig) -> Callable[[float], dict]:
    """Golden-model weights of zoo net `net` by width: from `cache`, trained and stored there when missing."""

    def golden(width: float) -> dict:
        import torch

        variant = Variant(net, width)
        key = weights_key(dataset, variant, config)
        try:
            data = cache.load_weights(key)
        except (FileNotFoundError, CacheCorrupted):
            train_weights(dataset, variant, config, key, str(cache.root))
            data = cache.load_weights(key)
        return torch.load(io.BytesIO(data), weights_only=True)

    return golden



def evaluate_split(module, variant: Variant, dataset: Dataset, split: str) -> tuple[SplitScores, tuple[str, ...]]:  # type: ignore[no-untyped-def]
    """Run `variant` on one split with every post-training transform it carries: knobs (per-sample ops) and bits
    compose in the effort path; bits alone run the quantized torch module. Returns the rows and the transforms
    applied, in `Variant.transforms` order."""
    from nets._torch import predict_logits

    images, labels = dataset.split(split)
    built = tuple(name for name in ("width", "increments", "exits") if name in variant.transforms)  # by the module
    if variant.knobs:
        from nets._effort import effort_logits

        logits, ops = effort_logits(module, variant, images, dataset.split("calib")[0])
        applied = built + (("bits", "rounding") if variant.bits is not None else ()) + ("knobs",)
        return scores_from_logits(logits, labels, ops), applied
    if variant.bits is not None:
        from nets._quant import quantized_logits

        logits = quantized_logits(module, variant, images, dataset.split("calib")[0])
        return scores_from_logits(logits, labels), built + ("bits", "rounding")
    return scores_from_logits(predict_logits(module, images), labels), built


def score_variant(dataset: Dataset, variant: Variant, config: TrainingConfig, key: str, root: str) -> VariantScores:
    """Load the variant's weights, score the calib and test splits, and store the rows."""
    import torch

    from nets._torch import init_module

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    cache = ScoreCache(root)
    state = torch.load(io.BytesIO(cache.load_weights(weights_key(dataset, variant, config))), weights_only=True)
    if variant.exits is not None:
        from nets._exits_torch import branched_module, exit_module

        trunk = variant.training.architecture
        branched = branched_module(trunk, variant.exits)
        branched.load_state_dict(state)
        module = exit_module(branched, trunk, variant.exits)
    elif variant.increments:
        from nets._incremental import stage_module

        module = stage_module(variant.architecture, variant.increments, variant.width, state)
    else:
        module = init_module(variant.architecture, variant.width, config.seed)
        module.load_state_dict(state)
    module.eval()
    scored = {split: evaluate_split(module, variant, dataset, split) for split in SCORED_SPLITS}
    return cache.store(key, variant, {split: rows for split, (rows, _) in scored.items()}, scored["calib"][1],
                       {"weights_key": weights_key(dataset, variant, config),
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S")})


def _parallel(jobs: list, n_jobs: int):  # type: ignore[no-untyped-def]
    """Run joblib jobs, yielding results as they finish."""
    from joblib import Parallel

    workers = min(n_jobs if n_jobs > 0 else os.cpu_count() or 1, len(jobs))
    return Parallel(n_jobs=workers, return_as="generator_unordered")(jobs)


def build_scores(dataset: Dataset, variants: Sequence[Variant], config: TrainingConfig,
                 cache: ScoreCache, n_jobs: int = -1,
                 log: Callable[[str], None] = print) -> dict[Variant, VariantScores]:
    """Scores of every variant: loaded from the cache when valid, else trained and scored in parallel (joblib).

    Two phases: every missing weight set is trained once (variants differing only in bit-width or
    knobs share one), then every missing variant is scored.
    """
    from joblib import delayed

    results: dict[Variant, VariantScores] = {}
    to_score: list[tuple[Variant, str]] = []
    for variant in dict.fromkeys(variants):
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
    # ordinary weights first: incremental training and frozen trunks start from the plain nets they may include
    builds_on = {key: bool(v.increments) or v.exits is not None for key, v in to_train.items()}
    for phase in ([k for k in to_train if not builds_on[k]], [k for k in to_train if builds_on[k]]):
        jobs = [delayed(train_weights)(dataset, to_train[key], config, key, str(cache.root)) for key in phase]
        for key in _parallel(jobs, n_jobs) if jobs else ():
            log(f"  trained {to_train[key].name} ({time.perf_counter() - start:.0f}s)")
    if to_score:
        jobs = [delayed(score_variant)(dataset, v, config, key, str(cache.root)) for v, key in to_score]
        for scores in _parallel(jobs, n_jobs):
            results[scores.variant] = scores
            log(f"  {scores.variant.name:>12}: calib acc {scores.splits['calib'].accuracy:.2%}, "
                f"test acc {scores.splits['test'].accuracy:.2%} ({time.perf_counter() - start:.0f}s)")
        cache.write_manifest()
    return {variant: results[variant] for variant in variants}
