"""Pydantic model of the composition spec (every field in docs/spec.md). Unknown fields are errors."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from registry.compose.methods import (
    CORE_CRITERION,
    DENSITY,
    MAJORITY_SIGN,
    RANK,
    get_method,
    method_names,
    methods_taking,
)
from registry.cron import check_cron
from registry.errors import InvalidInput
from registry.refs import ADAPTER_NAME_PATTERN, ALIAS_SCHEMA_PATTERN, Ref, validate_alias
from registry.spec.expression import MAX_WEIGHT, MAX_WEIGHT_TEXT, parse_expression, reduce_expression

T = TypeVar("T")
# The method names, rank/density rules and their messages come from the method table.
if TYPE_CHECKING:
    Method: TypeAlias = str
    MajoritySign: TypeAlias = str
    CoreCriterion: TypeAlias = str
else:
    Method = Literal[method_names()]
    MajoritySign = Literal[MAJORITY_SIGN.choices]
    CoreCriterion = Literal[CORE_CRITERION.choices]
AdapterName = Annotated[str, Field(pattern=ADAPTER_NAME_PATTERN)]
# Finite and at most MAX_WEIGHT in magnitude (docs/spec.md): `1e308 + 1e308` would sum to inf.
Weight = Annotated[float, Field(allow_inf_nan=False, ge=-MAX_WEIGHT, le=MAX_WEIGHT)]


class SpecFieldError(ValueError):
    """A cross-field check that knows which field is wrong (the loader reports that field's line)."""

    def __init__(self, loc: tuple[str | int, ...], message: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.loc = loc
        self.at = at  # whose line to report when `loc` is a missing field (e.g. `method` for `density`)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputSpec(_Strict):
    adapter: AdapterName
    version: int | str = "latest"  # N, an alias, or sha256:<prefix>
    weight: Weight

    @field_validator("version")
    @classmethod
    def _version(cls, v: int | str) -> int | str:
        _checked(lambda: Ref.build("x/x", v, "version"))  # same rules as `@selector` in expressions
        return v

    def ref(self) -> Ref:
        return Ref.build(self.adapter, self.version)


class EvaluationSpec(_Strict):
    name: str = Field(min_length=1)
    metric: Literal["perplexity", "accuracy"]
    dataset: str = Field(min_length=1)  # s3://..., file://... or a local path; JSONL


class GateSpec(_Strict):
    evaluation: str
    max: float | None = Field(default=None, allow_inf_nan=False)  # NaN would make every gate pass
    min: float | None = Field(default=None, allow_inf_nan=False)
    max_regression_vs: AdapterName | None = None  # a ref; may carry @selector
    by: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @field_validator("max_regression_vs", mode="before")
    @classmethod
    def _strip_selector(cls, v: Any) -> Any:
        if isinstance(v, str) and "@" in v:
            _checked(lambda: Ref.parse(v, "max_regression_vs"))
            return v.split("@", 1)[0]
        return v

    @model_validator(mode="after")
    def _one_condition(self) -> GateSpec:
        if self.max is None and self.min is None and self.max_regression_vs is None:
            raise ValueError("a gate needs max, min or max_regression_vs")
        if self.by is not None and self.max_regression_vs is None:
            raise SpecFieldError(("by",), "`by` only applies with max_regression_vs")
        return self


class ObjectiveSpec(_Strict):
    evaluation: str
    goal: Literal["minimize", "maximize"] = "minimize"


class SearchSpec(_Strict):
    """The search space is methods x scale x weight candidates (each dimension optional; at least one
    given). Without `methods` every candidate uses the spec's `method`; without `scale`, 1."""

    strategy: Literal["grid", "random", "nevergrad"] = "grid"
    # ref -> candidate weights; None (not {}) when absent, so older specs keep their canonical form
    weights: dict[str, list[Weight]] | None = Field(default=None, min_length=1)
    methods: list[Method] | None = Field(default=None, min_length=1)
    # multiplies the composed delta (LoRA: B; (IA)3: 1 + c (l - 1)); positive and finite
    scale: list[Annotated[float, Field(gt=0, le=MAX_WEIGHT, allow_inf_nan=False)]] | None = Field(
        default=None, min_length=1
    )
    objective: ObjectiveSpec
    budget: int | None = Field(default=None, gt=0)  # random / nevergrad: number of weight candidates

    @field_validator("weights")
    @classmethod
    def _refs(cls, v: dict[str, list[float]] | None) -> dict[str, list[float]] | None:
        for key, values in (v or {}).items():
            _checked(functools.partial(Ref.parse, key, "weights"))
            if not values:
                raise SpecFieldError(("weights", key), "needs at least one candidate weight")
        return v

    @field_validator("methods", "scale")
    @classmethod
    def _distinct(cls, v: list[Any] | None) -> list[Any] | None:
        repeated = next((x for i, x in enumerate(v or []) if x in v[:i]), None) if v else None
        if repeated is not None:
            raise ValueError(f"{repeated!r} is listed twice")
        return v

    @model_validator(mode="after")
    def _something_searched(self) -> SearchSpec:
        if self.weights is None and self.methods is None and self.scale is None:
            raise SpecFieldError(("weights",), "a search needs `weights`, `methods` or `scale`")
        return self


class OutputSpec(_Strict):
    # ensemble: decoding-time composition, registered as a recipe (registry/service/ensemble.py)
    kind: Literal["adapter", "merged_model", "ensemble"] = "adapter"
    # The check the registration makes when it moves each alias (registry/refs.py), not a copy of it.
    aliases: list[
        Annotated[
            str,
            Field(json_schema_extra={"pattern": ALIAS_SCHEMA_PATTERN}),
            AfterValidator(lambda v: _checked(lambda: validate_alias(v, "aliases"))),
        ]
    ] = []


class CompositionSpec(_Strict):
    name: AdapterName
    description: str | None = None
    base_model: str | None = None
    method: Method = "linear"
    rank: int | None = Field(default=None, gt=RANK.exclusive_minimum)
    density: float | None = Field(default=None, gt=DENSITY.exclusive_minimum, le=DENSITY.maximum)
    majority_sign: MajoritySign = "total"
    seed: int = 0
    # core_merge (None = magnitude); `calibration`: an evaluation name of this spec or a dataset URI.
    # Optional fields default to None so that older specs keep their canonical form (and cache key).
    core_criterion: CoreCriterion | None = None
    # the method's other parameters (its declaration names them); None by default so older specs
    # keep their canonical form (and cache key)
    params: dict[str, Any] | None = None
    calibration: str | None = Field(default=None, min_length=1)
    compare_decoding: bool | None = None  # also evaluate the decoding-time ensemble of the inputs
    expression: str | None = None
    inputs: list[InputSpec] | None = Field(default=None, min_length=1)
    evaluate: list[EvaluationSpec] = []
    gate: list[GateSpec] = []
    search: SearchSpec | None = None
    output: OutputSpec = OutputSpec()
    schedule: str | None = None
    recompose: Literal["on_parent_update"] | None = None
    # Times a run lost with its worker (no heartbeat) is started again by reconcile; unset = 0.
    # None (not 0) by default so specs without it keep their cache key.
    retries: int | None = Field(default=None, ge=0, le=3)

    @field_validator("expression")
    @classmethod
    def _expression(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                parse_expression(v)
            except InvalidInput as exc:
                raise ValueError(str(exc).removeprefix("expression: ")) from None
        return v

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str | None) -> str | None:
        return None if v is None else _checked(lambda: check_cron(v))

    @model_validator(mode="after")
    def _cross_fields(self) -> CompositionSpec:
        if (self.expression is None) == (self.inputs is None):
            raise SpecFieldError(("expression",), "give exactly one of `expression` or `inputs`")
        self._check_method_fields()
        self._check_core_and_decoding()
        names = [e.name for e in self.evaluate]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise SpecFieldError(("evaluate", i, "name"), f"duplicate evaluation name {name!r}")
        for i, g in enumerate(self.gate):
            if g.evaluation not in names:
                raise SpecFieldError(("gate", i, "evaluation"), f"unknown evaluation {g.evaluation!r}")
        if self.search is not None:
            if self.search.objective.evaluation not in names:
                raise SpecFieldError(
                    ("search", "objective", "evaluation"),
                    f"unknown evaluation {self.search.objective.evaluation!r}",
                )
            known = self._all_refs()
            full_names = {r.full_name for r in known}
            for key in self.search.weights or {}:
                ref = Ref.parse(key)
                # `acme/toxic` in search matches `acme/toxic@2` in the expression
                if ref not in known and not (ref.selector is None and ref.full_name in full_names):
                    raise SpecFieldError(
                        ("search", "weights", key), f"{key} is not an input of the composition"
                    )
        self.weighted_refs()  # all-zero inputs are an error
        return self

    def searched_methods(self) -> list[str]:
        """The methods a run composes with: `search.methods`, else the spec's `method`."""
        if self.search is not None and self.search.methods is not None:
            return list(self.search.methods)
        return [self.method]

    def for_method(self, name: str) -> CompositionSpec:
        """This spec as composed with method `name` of `search.methods`, with the fields that method takes
        (rank, density, core_criterion, the `params:` it declares) and without the others and the search:
        what composing one searched method alone means (the winner's registered output is this spec's)."""
        method = get_method(name)
        assert method is not None  # the Literal refused unknown names
        data = self.canonical()
        data.pop("search", None)
        data["method"] = name
        for field in ("rank", "density", "core_criterion"):
            if not method.takes(field):
                data.pop(field, None)
        declared = {p.name for p in method.params if p.where == "params"}
        params = {k: v for k, v in (self.params or {}).items() if k in declared}
        data.pop("params", None)
        if params:
            data["params"] = params
        return CompositionSpec.model_validate(data)

    def _check_method_fields(self) -> None:
        """The method's fields, from its declaration: required ones present, others' absent."""
        if self.search is not None and self.search.methods is not None:
            self._check_searched_method_fields(self.search.methods)
            return
        method = get_method(self.method)
        assert method is not None  # the Literal refused unknown names
        for name in ("density", "rank", "core_criterion"):  # None = not given (majority_sign, seed default)
            param = method.param(name)
            if param is not None and param.required and getattr(self, name) is None:
                raise SpecFieldError((name,), f"method {self.method} needs {name}", at=("method",))
            if param is None and getattr(self, name) is not None:
                takers = ", ".join(methods_taking(name))
                raise SpecFieldError((name,), f"{name} applies to {takers}, not {self.method}")
        bad = method.params_problem(self.params or {}) or method.fields_problem(
            {p.name: getattr(self, p.name) for p in method.params if p.where == "spec"}, self.params or {}
        )
        if bad is not None:
            raise SpecFieldError(
                tuple(bad[0].split(".", 1)), bad[1], at=("params",) if self.params else ("method",)
            )

    def _check_searched_method_fields(self, names: list[str]) -> None:
        """Under `search.methods` each method takes the spec's fields it declares and is tried without
        the others: a field is refused only when no searched method takes it, and a required one only
        when missing for a method that needs it."""
        at = ("search", "methods")
        if "method" in self.model_fields_set and self.method not in names:
            raise SpecFieldError(
                ("method",), f"method {self.method} is not in search.methods ({', '.join(names)})"
            )
        methods = [get_method(n) for n in names]
        for name in ("density", "rank", "core_criterion"):
            takers = [m for m in methods if m is not None and m.param(name) is not None]
            if getattr(self, name) is not None and not takers:
                raise SpecFieldError(
                    (name,), f"{name} applies to none of search.methods ({', '.join(names)})"
                )
            for m in takers:
                param = m.param(name)
                if param is not None and param.required and getattr(self, name) is None:
                    raise SpecFieldError((name,), f"method {m.name} in search.methods needs {name}", at=at)
        given = self.params or {}
        for key in given:
            if not any(p.name == key and p.where == "params" for m in methods if m for p in m.params):
                raise SpecFieldError(
                    ("params", key), f"no method of search.methods takes params.{key}", at=("params",)
                )
        for searched in methods:
            assert searched is not None
            declared = {p.name for p in searched.params if p.where == "params"}
            bad = searched.params_problem({k: v for k, v in given.items() if k in declared})
            if bad is not None:
                raise SpecFieldError(tuple(bad[0].split(".", 1)), bad[1], at=("params",) if given else at)

    def _check_core_and_decoding(self) -> None:
        if self.core_criterion == "importance" and self.calibration is None:
            raise SpecFieldError(
                ("calibration",),
                "core_criterion importance needs calibration (an evaluation name or dataset)",
            )
        if self.calibration is not None and self.core_criterion != "importance":
            raise SpecFieldError(("calibration",), "calibration applies to core_criterion importance only")
        if self.core_criterion == "importance" and self.search is not None:
            raise SpecFieldError(("search",), "lambda search is not supported with core_criterion importance")
        if self.output.kind == "ensemble":
            if self.method != "linear" or self.rank is not None or self.density is not None:
                raise SpecFieldError(
                    ("method",),
                    "output kind ensemble combines logits at decoding time: no weight method applies",
                )
            if self.compare_decoding:
                raise SpecFieldError(("compare_decoding",), "an ensemble is already the decoding-time result")
            if self.search is not None:
                raise SpecFieldError(("search",), "lambda search is not supported for output kind ensemble")
        if self.compare_decoding and not self.evaluate:
            raise SpecFieldError(("compare_decoding",), "compare_decoding needs at least one evaluation")

    def calibration_dataset(self) -> str | None:
        """The calibration dataset URI: the named evaluation's dataset, else `calibration` itself."""
        if self.calibration is None:
            return None
        named = {e.name: e.dataset for e in self.evaluate}
        return named.get(self.calibration, self.calibration)

    def _all_refs(self) -> set[Ref]:
        if self.expression is not None:
            return set(reduce_expression(self.expression))
        return {item.ref() for item in self.inputs or []}

    def weighted_refs(self) -> list[tuple[Ref, float]]:
        """One (ref, weight) per distinct input, from `expression` or `inputs`."""
        if self.expression is not None:
            return parse_expression(self.expression)
        merged: dict[Ref, float] = {}
        for item in self.inputs or []:
            merged[item.ref()] = merged.get(item.ref(), 0.0) + item.weight
        result = [(r, w) for r, w in merged.items() if w != 0]
        for ref, w in result:
            if abs(w) > MAX_WEIGHT:
                raise SpecFieldError(
                    ("inputs",), f"the weights of {ref} add up to {w:.3g}; bounded by {MAX_WEIGHT_TEXT}"
                )
        if not result:
            raise SpecFieldError(("inputs",), "every weight is 0")
        return result

    def canonical(self) -> dict[str, Any]:
        """Defaults filled, None dropped: the stable form hashed into the cache key."""
        return self.model_dump(mode="json", exclude_none=True)

    def canonical_json(self) -> str:
        return json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))


def _checked(fn: Callable[[], T]) -> T:
    """Grammar errors are InvalidInput; pydantic only attributes ValueErrors to the field (and names the
    field itself, so the checker's own `field: ` prefix goes)."""
    try:
        return fn()
    except InvalidInput as exc:
        raise ValueError(str(exc).removeprefix(f"{exc.field}: ")) from None
