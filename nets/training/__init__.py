"""Public API of the torch side of `nets` (importing it imports torch): build, initialise, train and run modules."""

from nets.training._torch import build_module, init_module, predict_logits, train_module

__all__ = ["build_module", "init_module", "predict_logits", "train_module"]
