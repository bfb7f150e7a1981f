"""Networks a study declares itself ([models.NAME]): an ONNX file, imported logits or a layer list, maybe a measured
price. A declared model belongs to its spec: a variant carries the model it runs (`Variant.model`), so that two specs
in one process that use one name for different models never see each other's (there is no global registry).

How each is scored: an ONNX model by onnxruntime on the study's images (no training); a logits model from its file;
a layer-list model is trained like a zoo net. Only the last takes transforms (width, bits, knobs, increments), and
only when it is priced analytically: a measured price covers the model as measured, nothing else.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from nets.models._arch import Architecture

if TYPE_CHECKING:
    from nets.models._imported import ImportedLogits
    from nets.models._onnx import OnnxModel


@dataclass(frozen=True, eq=False)
class Model:
    """A declared network: where its scores come from (`onnx`, `logits`, else trained from `architecture`) and its
    price (`energy_j` / `latency_s` measured per inference, else the cost model on `architecture`, if any)."""

    name: str
    architecture: Architecture | None
    onnx: "OnnxModel | None" = None
    logits: "ImportedLogits | None" = None
    input_mean: tuple[float, ...] | None = None
    input_std: tuple[float, ...] | None = None
    energy_j: float | None = None
    latency_s: float | None = None

    @property
    def scored_by(self) -> str:
        """'logits' (from its file), 'onnx' (onnxruntime) or 'training' (trained like a zoo net)."""
        return "logits" if self.logits is not None else "onnx" if self.onnx is not None else "training"

    @property
    def measured(self) -> bool:
        """True when a measured energy replaces the cost model."""
        return self.energy_j is not None

    @property
    def takes_transforms(self) -> bool:
        """Only a trained, analytically priced model can be scored and priced at another width, bits or knobs."""
        return self.scored_by == "training" and not self.measured

    @property
    def digest(self) -> str:
        """SHA-256 of every file the model was read from ('' for a layer list written in the spec)."""
        return self.logits.digest if self.logits is not None else self.onnx.digest if self.onnx is not None else ""

    def fingerprint(self) -> dict:
        """What defines the model's scores and price, JSON-ready (the files by content, not path)."""
        arch = self.architecture
        return {"scored_by": self.scored_by, "digest": self.digest, "input_mean": self.input_mean,
                "input_std": self.input_std, "energy_j": self.energy_j, "latency_s": self.latency_s,
                "layers": arch.describe() if arch else None, "input_shape": list(arch.input_shape) if arch else None}

    def __eq__(self, other: object) -> bool:
        """Equal by name and content (`fingerprint`): a file read twice is the same model, another file is not."""
        return isinstance(other, Model) and self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)

    @cached_property
    def _identity(self) -> tuple[str, str]:
        """Name and content, computed once (variants carrying the model are hashed often)."""
        return self.name, json.dumps(self.fingerprint(), sort_keys=True)


def takes_transforms(model: Model | None) -> bool:
    """True for a net that can be scored and priced at another width, bits or knobs: a shipped net (None), or a
    declared layer list priced by the cost model."""
    return model is None or model.takes_transforms
