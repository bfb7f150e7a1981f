"""Rules between a spec's declared models (`dse.core.models`), its data and the variants it runs.

Apart from the [models.NAME] reader, which the spec loader calls, because these rules read the loaded spec.
"""

from __future__ import annotations

import nets
from dse.core.errors import SpecError, check
from dse.core.spec import StudySpec


def check_models(spec: StudySpec, variants: list[nets.Variant]) -> None:
    """Rules between the declared models, the data and the variants the study runs (before any data is read)."""
    src, models = spec.source, spec.models
    for variant in variants:
        try:
            nets.check_variant(variant)
        except nets.UserError as exc:
            raise SpecError(f"{src}: models.{variant.net}: {exc}") from None
    used = list(dict.fromkeys(variant.net for variant in variants))
    if spec.data.dataset == "labels":
        for net in used:
            check(net in models and models[net].logits is not None, f"{src}: data.dataset",
                  f"'labels' brings no images, so every net must be a [models] table with logits; '{net}' is not")
    else:
        for net in used:
            check(net not in models or models[net].logits is None, f"{src}: models.{net}.logits",
                  f"imported logits can be matched to samples only with data.dataset = \"labels\" (the tool splits "
                  f"{spec.data.dataset} itself)")
    with_logits = [(net, models[net].logits.num_classes) for net in used if net in models and models[net].logits]
    for net, classes in with_logits[1:]:
        first, first_classes = with_logits[0]
        check(classes == first_classes, f"{src}: models.{net}.logits",
              f"{classes} classes, but models.{first}.logits has {first_classes}")
    blind = [net for net in used if net in models and models[net].measured and models[net].architecture is None]
    for objective, missing in (("latency", [net for net in blind if models[net].latency_s is None]),
                               ("storage", blind)):
        check(objective not in spec.search.objectives or not missing, f"{src}: search.objectives",
              f"'{objective}' needs a {objective} for every net, but models.{missing[0] if missing else ''} has only "
              f"a measured energy" + (" (add latency_s)" if objective == "latency" else " (add onnx or layers)"))
