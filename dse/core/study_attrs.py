"""Where a study keeps what dse records: the attribute names, the report data and a trial's recorded points."""

from __future__ import annotations

import json
from typing import Any

import optuna

from dse.core.optuna_adapter import set_study_system_attr, study_system_attrs


RECORD = "front"  # the trial user attribute holding every recorded point of the trial's threshold front (as JSON)
REPORT_PREFIX = "dse:"  # study system attributes holding the report's baselines, margin curves and panels
DASHBOARD_CONSTRAINTS = "constraints"  # the system attribute optuna-dashboard 0.21 reads constraints from
CERTIFICATE = "certificate"  # the report data key holding the loss guarantee's certificate
RECOMMENDED = "recommended"  # the study user attribute naming the recommended point (what optuna-dashboard lists)
SPEC_ATTR = "spec"  # report data (a study system attribute): the digest payload of the spec the study was made from
SPEC_NAME_ATTR = "spec_name"  # the name of that spec (a study started with --new is named <spec name>-<n>)
SPEC_SOURCE_ATTR = "spec_source"


def report_data(study: optuna.Study) -> dict[str, Any]:
    """The baselines, margin curves and panels `run_search` stored on the study (as study system attributes)."""
    attrs = study_system_attrs(study)
    return {key[len(REPORT_PREFIX):]: value for key, value in attrs.items() if key.startswith(REPORT_PREFIX)}


def store_report_data(study: optuna.Study, key: str, value: Any) -> None:
    """Store one item of report data (`report_data` reads it back under `key`)."""
    set_study_system_attr(study, f"{REPORT_PREFIX}{key}", value)


def recorded_points(trial: optuna.trial.FrozenTrial) -> list[dict[str, Any]]:
    """Every point a trial recorded: one JSON string (so that Optuna copies a trial's front as one value), or the
    list itself, as studies recorded it before."""
    record = trial.user_attrs.get(RECORD, [])
    return json.loads(record) if isinstance(record, str) else record
