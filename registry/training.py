"""A version's training record: `--metric k=v`, `--param k=v`, `--dataset URI` at registration.

What MLflow records beside a logged model (metrics, params, dataset inputs) and the Hub shows in a
card's `model-index` / `datasets`: given by the user, stored with the version, shown everywhere the
version is, searchable. One parser for every shell (CLI in both modes, REST form and JSON, client), so
a value is refused with the same message wherever it comes from. Standard library + pydantic only.
"""

from __future__ import annotations

import math
import re

from registry.errors import InvalidInput
from registry.views import TrainingRecord

# The rules, written once as patterns: the parsers below match them, and the REST schema publishes them
# (so what the OpenAPI document calls valid is exactly what the server accepts).
_NAME = r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}"
# Bounded so that every number the pattern admits is finite (at most ~1e119): the schema and the
# server agree without a second, numeric rule.
_NUMBER = r"[-+]?([0-9]{1,20}[.]?[0-9]{0,20}|[.][0-9]{1,20})([eE][-+]?[0-9]{1,2})?"
_VALUE = r"[^\x00-\x1f\x7f]{0,512}"
METRIC_PATTERN = rf"^{_NAME}={_NUMBER}$"  # name=number
PARAM_PATTERN = rf"^{_NAME}={_VALUE}$"  # name=value
DATASET_PATTERN = r"^[^\x00-\x1f\x7f]{1,1024}$"  # a URI
METRIC_FILTER_PATTERN = rf"^{_NAME} *(<=|>=|=|<|>) *{_NUMBER}$"  # MLflow's `metrics.acc >= 0.8`
PARAM_FILTER_PATTERN = rf"^{_NAME}[:=]{_VALUE}$"  # name:value (or name=value), like tag filters
MAX_ENTRIES = 256
_METRIC_FILTER = re.compile(rf"(?P<name>{_NAME}) *(?P<op><=|>=|=|<|>) *(?P<value>{_NUMBER})")


def _pair(item: str, field: str, pattern: str) -> tuple[str, str]:
    if not re.fullmatch(pattern.strip("^$"), item):
        what = "name=number" if field == "metric" else "name=value"
        raise InvalidInput(
            f"{field}: {item[:80]!r} is not {what} (name: letters, digits, _ . / -; value: no control "
            "characters, at most 512)",
            field=field,
        )
    key, _, value = item.partition("=")
    return key, value


def _number(text: str) -> float:
    number = float(text)
    assert math.isfinite(number), text  # the pattern admits only finite decimal numbers
    return number


def parse_training(
    metrics: list[str] | None = None, params: list[str] | None = None, datasets: list[str] | None = None
) -> TrainingRecord:
    """`k=v` metrics (numbers), `k=v` params (text), dataset URIs; a later `k=` replaces an earlier one."""
    if sum(len(x or []) for x in (metrics, params, datasets)) > MAX_ENTRIES:
        raise InvalidInput(f"metric: at most {MAX_ENTRIES} training entries in all", field="metric")
    parsed_metrics: dict[str, float] = {}
    for item in metrics or []:
        key, value = _pair(item, "metric", METRIC_PATTERN)
        parsed_metrics[key] = _number(value)
    parsed_params = dict(_pair(item, "param", PARAM_PATTERN) for item in params or [])
    return TrainingRecord(
        metrics=parsed_metrics, params=parsed_params, datasets=check_datasets(datasets or [])
    )


def check_datasets(uris: list[str]) -> list[str]:
    found: list[str] = []
    for uri in uris:
        if not re.fullmatch(DATASET_PATTERN.strip("^$"), uri):
            raise InvalidInput(
                f"dataset: {uri[:80]!r}: 1 to 1024 characters, no control characters", field="dataset"
            )
        if uri not in found:
            found.append(uri)
    return found


def parse_metric_filter(text: str) -> tuple[str, str, float]:
    """`acc>=0.8` -> ("acc", ">=", 0.8); the listing filter on a training metric."""
    match = _METRIC_FILTER.fullmatch(text)
    if match is None:
        raise InvalidInput(f"metric: {text[:80]!r} is not NAME<op>NUMBER (op: > >= < <= =)", field="metric")
    return match["name"], match["op"], _number(match["value"])


def parse_param_filter(items: list[str]) -> dict[str, str]:
    """`name:value` (or `name=value`) filters on a version's hyper-parameters."""
    found = {}
    for item in items:
        if not re.fullmatch(PARAM_FILTER_PATTERN.strip("^$"), item):
            raise InvalidInput(f"param: {item[:80]!r} is not name:value", field="param")
        cut = min(i for i in (item.find(":"), item.find("=")) if i > 0)
        found[item[:cut]] = item[cut + 1 :]
    return found
