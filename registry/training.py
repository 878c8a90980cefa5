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

NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,127}")
MAX_VALUE = 512
MAX_URI = 1024
MAX_ENTRIES = 256
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# A metric filter: `name>=0.8`, `name<2`, `name=0.5` (MLflow's `metrics.name >= 0.8`).
METRIC_FILTER_RE = re.compile(
    r"(?P<name>[A-Za-z0-9_][A-Za-z0-9_./-]{0,127})\s*(?P<op><=|>=|=|<|>)\s*(?P<value>.+)"
)


def _pair(item: str, field: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    key, value = key.strip(), value.strip()
    if not sep or not NAME_RE.fullmatch(key):
        raise InvalidInput(
            f"{field}: {item[:80]!r} is not name=value (name: letters, digits, _ . / -)", field=field
        )
    if _CONTROL.search(value) or len(value) > MAX_VALUE:
        raise InvalidInput(
            f"{field}: {key}: at most {MAX_VALUE} characters, no control characters", field=field
        )
    return key, value


def parse_number(text: str, field: str, name: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise InvalidInput(f"{field}: {name}={text[:40]!r} is not a number", field=field) from None
    if not math.isfinite(number):
        raise InvalidInput(f"{field}: {name}={text[:40]!r} is not a finite number", field=field)
    return number


def parse_training(
    metrics: list[str] | None = None, params: list[str] | None = None, datasets: list[str] | None = None
) -> TrainingRecord:
    """`k=v` metrics (numbers), `k=v` params (text), dataset URIs; a later `k=` replaces an earlier one."""
    if sum(len(x or []) for x in (metrics, params, datasets)) > MAX_ENTRIES:
        raise InvalidInput(f"metric: at most {MAX_ENTRIES} training entries in all", field="metric")
    parsed_metrics: dict[str, float] = {}
    for item in metrics or []:
        key, value = _pair(item, "metric")
        parsed_metrics[key] = parse_number(value, "metric", key)
    parsed_params = dict(_pair(item, "param") for item in params or [])
    uris: list[str] = []
    for uri in datasets or []:
        uri = uri.strip()
        if not uri or _CONTROL.search(uri) or len(uri) > MAX_URI:
            raise InvalidInput(
                f"dataset: {uri[:80]!r}: 1 to {MAX_URI} characters, no control characters", field="dataset"
            )
        if uri not in uris:
            uris.append(uri)
    return TrainingRecord(metrics=parsed_metrics, params=parsed_params, datasets=uris)


def parse_metric_filter(text: str) -> tuple[str, str, float]:
    """`acc>=0.8` -> ("acc", ">=", 0.8); the listing filter on a training metric."""
    match = METRIC_FILTER_RE.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"metric: {text[:80]!r} is not NAME<op>NUMBER (op: > >= < <= =)", field="metric")
    return match["name"], match["op"], parse_number(match["value"].strip(), "metric", match["name"])
