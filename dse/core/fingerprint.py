"""The spec fingerprint a study is identified by, and the keys in which two specs differ."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from dse.core.spec import SpecError, StudySpec
from nets import file_digest


def spec_digest(spec: StudySpec) -> str:
    """Fingerprint of what defines the study's space and values (not the trial budget)."""
    return hashlib.sha256(json.dumps(digest_payload(spec), sort_keys=True).encode()).hexdigest()[:16]


def digest_payload(spec: StudySpec) -> dict:
    """What `spec_digest` hashes: every section, less the trial budget, off sections of newer mechanisms and default
    fields added after the fingerprint was fixed."""
    off = {name for name, bound in spec.mechanisms.items()
           if not bound.mechanism.digest_when_off and name not in spec.enabled()}
    payload = {name: dataclasses.asdict(section) for name, section in spec.sections().items() if name not in off}
    payload["search"] = {k: v for k, v in payload["search"].items() if k not in ("n_trials", "seed")}
    if spec.models:  # by content: the same files elsewhere resume the study, one changed byte does not
        payload["models"] = {name: model.fingerprint() for name, model in spec.models.items()}
    if spec.accelerator.technology:  # so is a technology file (its path is already in the accelerator section)
        try:
            payload["technology_sha256"] = file_digest(spec.accelerator.technology)
        except OSError as exc:
            raise SpecError(f"{spec.source}: accelerator.technology: cannot read {spec.accelerator.technology} "
                            f"({exc.strerror})") from None
    if spec.search.criteria == ("margin",):  # the default, which studies made before criteria existed had
        del payload["search"]["criteria"]
    for name, bound in spec.mechanisms.items():  # fields added later, at the defaults older studies had
        for key, default in bound.mechanism.later_fields.items():
            if name in payload and payload[name].get(key) == default:
                del payload[name][key]
    return payload


class ChangedSpec(SpecError):
    """A study of the spec's name holds another spec; the message names every changed key with both values."""


def flat_keys(payload: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested spec payload as dotted keys (e.g. 'search.max_accuracy_loss_pct'), values as JSON reads them back."""
    out: dict[str, Any] = {}
    for key, value in json.loads(json.dumps(payload)).items():
        if isinstance(value, dict) and value:
            out |= flat_keys(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'key: old -> new' for every key whose value differs between two spec payloads ('absent' on the missing side)."""
    before, after = flat_keys(old), flat_keys(new)
    def show(values: dict[str, Any], key: str) -> str:
        return json.dumps(values[key]) if key in values else "absent"
    return [f"{key}: {show(before, key)} -> {show(after, key)}" for key in sorted(before.keys() | after.keys())
            if before.get(key, ...) != after.get(key, ...)]
