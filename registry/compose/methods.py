"""The method table: every composition method is one declaration, registered once.

A `Method` says what a method is, not how it computes: its name, the PEM types it supports, the spec
fields it takes (type, default, range), whether it reads its inputs as factors or as dense modules
(formed one input at a time), and its LoRA output-rank rule. The spec schema and its cross-field
rules (registry/spec/model.py), the engine's parameter checks (compose/checks.py), the composers'
dispatch (each composer has one rule per method it supports: no fall-through), the dry run, the
provenance, `pemreg methods list` / `GET /v1/methods` and docs/methods.md all read this table.
Registering a name twice is refused (as mergekit's REGISTERED_MERGE_METHODS and PEFT's
register_peft_method do).

This module imports neither torch nor pydantic: the spec and the CLI read it cheaply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from registry.pem.types import IA3, LORA

Space = Literal["factor", "dense"]
RankRule = Literal["input", "sum", "rank", "rank_or_sum", "per_input"]

# The LoRA output rank of one module from its inputs' ranks and the resolved `rank` parameter.
RANK_RULES: dict[str, str] = {
    "input": "the inputs' rank r (equal ranks per module)",
    "sum": "sum_i r_i",
    "rank": "rank (default: the largest input rank), zero-padded",
    "rank_or_sum": "rank (default: sum_i r_i), zero-padded",
    "per_input": "sum_i min(r_i, params.per_input_rank), zero-padded",
}
# A cross-field rule of one method: (the spec fields and `params:` values as used) -> (field, message)
# of the first problem, or None. Run by the spec and by the engine's parameter checks.
FieldsCheck = Callable[[Mapping[str, Any]], "tuple[str, str] | None"]


@dataclass(frozen=True)
class Param:
    """A spec field a method takes. `required`: no default applies (the spec names the field)."""

    name: str
    type: Literal["int", "float", "str"]
    default: Any = None
    required: bool = False
    minimum: float | None = None  # inclusive
    exclusive_minimum: float | None = None
    maximum: float | None = None  # inclusive
    choices: tuple[str, ...] = ()
    doc: str = ""
    default_doc: str = ""  # the default in words, when it depends on the inputs
    # "spec": a top-level spec field (rank, density, seed, and the older majority_sign, core_criterion);
    # "params": a key of the spec's `params:` mapping (every other method-specific parameter)
    where: Literal["spec", "params"] = "spec"

    def in_range(self, value: float) -> bool:
        return (
            (self.minimum is None or value >= self.minimum)
            and (self.exclusive_minimum is None or value > self.exclusive_minimum)
            and (self.maximum is None or value <= self.maximum)
        )

    def range_text(self) -> str:
        """`(0, 1]`-style interval, '' without bounds."""
        if self.exclusive_minimum is not None:
            low = f"({self.exclusive_minimum:g}"
        elif self.minimum is not None:
            low = f"[{self.minimum:g}"
        else:
            low = "(-inf" if self.maximum is not None else ""
        if not low:
            return ""
        if self.maximum is None:  # one-sided: "> 0" reads better than "(0, inf)"
            return f"{'>' if low[0] == '(' else '>='} {low[1:]}"
        return f"{low}, {self.maximum:g}]"

    @property
    def field(self) -> str:
        """The spec field that holds it (what an error names)."""
        return f"params.{self.name}" if self.where == "params" else self.name

    def problem(self, value: Any) -> str | None:
        """Why `value` does not fit the declared type, choices or range; None when it fits."""
        if self.type == "str":
            typed = isinstance(value, str)
        elif self.type == "int":
            typed = isinstance(value, int) and not isinstance(value, bool)
        else:
            typed = isinstance(value, int | float) and not isinstance(value, bool)
        if not typed:
            return f"must be of type {self.type}, got {value!r}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(self.choices)}, got {value!r}"
        if self.type != "str" and not self.in_range(value):
            bounds = self.range_text()
            return f"must be {bounds if bounds[0] in '<>' else 'in ' + bounds}, got {value!r}"
        return None

    def describe(self) -> str:
        """One line for docs and `pemreg methods list`: name, type, range or choices, default."""
        parts = [f"`{self.field}` {self.type}"]
        if self.choices:
            parts.append("(" + " / ".join(self.choices) + ")")
        bounds = self.range_text()
        if bounds:
            parts.append(f"in {bounds}" if bounds[0] in "([" else bounds)
        parts.append("required" if self.required else f"default {self.default_doc or self.default}")
        return " ".join(parts)


@dataclass(frozen=True)
class Method:
    name: str
    pem_types: tuple[str, ...]
    space: Space  # factor: LoRA factors combined as factors; dense: one input's dense module at a time
    output_rank: RankRule
    params: tuple[Param, ...] = ()
    summary: str = ""
    provider: str = "pemreg"
    check: FieldsCheck | None = field(default=None, compare=False)

    def param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def takes(self, name: str) -> bool:
        return self.param(name) is not None

    def params_problem(self, given: Mapping[str, Any]) -> tuple[str, str] | None:
        """(field, message) for the first bad key or value of a spec's `params:`; None when all fit."""
        accepted = [p for p in self.params if p.where == "params"]
        for key, value in given.items():
            param = next((p for p in accepted if p.name == key), None)
            if param is None:
                names = ", ".join(p.name for p in accepted) or "none"
                return f"params.{key}", f"method {self.name} takes no parameter {key!r} (params: {names})"
            problem = param.problem(value)
            if problem is not None:
                return f"params.{key}", f"params.{key} {problem}"
        missing = [p.name for p in accepted if p.required and p.name not in given]
        if missing:
            return f"params.{missing[0]}", f"method {self.name} needs params.{missing[0]}"
        return None

    def resolved_params(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """The `params:` values a run uses: the given ones, defaults for the rest."""
        return {p.name: given.get(p.name, p.default) for p in self.params if p.where == "params"}

    def fields_problem(self, fields: Mapping[str, Any], given: Mapping[str, Any]) -> tuple[str, str] | None:
        """The method's cross-field rule on the spec fields and its `params:` (defaults filled)."""
        if self.check is None:
            return None
        values = {p.name: fields.get(p.name) for p in self.params if p.where == "spec"}
        values = {k: self.param(k).default if v is None else v for k, v in values.items()}  # type: ignore[union-attr]
        values.update(self.resolved_params(given))
        return self.check(values)

    def lora_rank(
        self, input_ranks: Sequence[int], rank: int | None, given: Mapping[str, Any] | None = None
    ) -> int:
        """The output rank of one LoRA module (`rank` resolved by the engine for the "rank" rule)."""
        if self.output_rank == "input":
            return input_ranks[0]
        if self.output_rank == "sum":
            return sum(input_ranks)
        if self.output_rank == "rank_or_sum":
            return sum(input_ranks) if rank is None else rank
        if self.output_rank == "per_input":
            cap = self.resolved_params(given or {}).get("per_input_rank")
            return sum(r if cap is None else min(r, cap) for r in input_ranks)
        if rank is None:
            raise ValueError(f"method {self.name} needs a resolved rank")
        return rank

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("check")  # a function: the docs say the rule in words
        data["pem_types"] = list(self.pem_types)
        data["params"] = [{**asdict(p), "choices": list(p.choices)} for p in self.params]
        data["output_rank_rule"] = RANK_RULES[self.output_rank]
        return data


_REGISTRY: dict[str, Method] = {}


class DuplicateMethod(ValueError):
    pass


def register_method(method: Method) -> Method:
    """Add a method to the table; a name already registered is refused."""
    if method.name in _REGISTRY:
        raise DuplicateMethod(
            f"method {method.name!r} is already registered (by {_REGISTRY[method.name].provider})"
        )
    if method.output_rank not in RANK_RULES:
        raise ValueError(f"method {method.name!r}: unknown output-rank rule {method.output_rank!r}")
    _REGISTRY[method.name] = method
    return method


def get_method(name: str) -> Method | None:
    return _table().get(name)


def all_methods() -> tuple[Method, ...]:
    return tuple(_table().values())


def method_names() -> tuple[str, ...]:
    return tuple(_table())


def methods_taking(param: str) -> tuple[str, ...]:
    return tuple(m.name for m in _table().values() if m.takes(param))


_plugins_loaded = False


def _table() -> dict[str, Method]:
    """The registry, with the installed plugins joined on first read (not at import: a plugin module
    imports this one, and a program that imports the plugin first must not meet it half-built)."""
    global _plugins_loaded
    if not _plugins_loaded:
        _plugins_loaded = True
        load_plugins()
    return _REGISTRY


# ---- the built-in methods (formulas: docs/methods.md) -------------------------------------------

RANK = Param(
    "rank",
    "int",
    exclusive_minimum=0,
    doc="output rank k of a LoRA result",
    default_doc="the largest input rank",
)
DENSITY = Param("density", "float", required=True, exclusive_minimum=0, maximum=1, doc="kept fraction")
MAJORITY_SIGN = Param(
    "majority_sign", "str", default="total", choices=("total", "frequency"), doc="sign election"
)
SEED = Param("seed", "int", default=0, doc="DARE's random masks")
CORE_CRITERION = Param(
    "core_criterion", "str", default="magnitude", choices=("magnitude", "importance"), doc="core score"
)
GAMMA = Param(
    "gamma",
    "float",
    default=0.01,
    minimum=0,
    maximum=1,
    doc="largest-magnitude fraction dropped before the kept band",
    where="params",
)
MERGE = Param(
    "merge",
    "str",
    default="linear",
    choices=("linear", "ties"),
    doc="how the V_i^T blocks merge",
    where="params",
)
# knots trims the V_i^T blocks only under merge: ties; mergekit's density defaults to 1.0 (keep all)
BLOCK_DENSITY = Param(
    "density", "float", default=1.0, exclusive_minimum=0, maximum=1, doc="kept fraction of each V_i^T block"
)
RANK_SUM = Param(
    "rank", "int", exclusive_minimum=0, doc="output rank k of a LoRA result", default_doc="sum_i r_i"
)
PER_INPUT_RANK = Param(
    "per_input_rank",
    "int",
    exclusive_minimum=0,
    doc="singular triplets kept per input",
    default_doc="r_i",
    where="params",
)
SCALE = Param("scale", "float", default=1.0, exclusive_minimum=0, doc="multiplies the result", where="params")
EPSILON = Param(
    "epsilon",
    "float",
    default=0.1,
    minimum=0,
    maximum=1,
    doc="spread of the keep probabilities around density",
    where="params",
)
BOTH = (LORA.name, IA3.name)


def _della_probabilities(values: Mapping[str, Any]) -> tuple[str, str] | None:
    """Keep probabilities span [density - epsilon/2, density + epsilon/2]: each must be in (0, 1]."""
    low, high = values["density"] - values["epsilon"] / 2, values["density"] + values["epsilon"] / 2
    if low > 0 and high <= 1:
        return None
    return (
        "params.epsilon",
        f"della keeps entries with probabilities in [density - epsilon/2, density + epsilon/2] = "
        f"[{low:g}, {high:g}], which must lie in (0, 1]",
    )


for _method in (
    Method(
        "linear", BOTH, "factor", "input", summary="A = sum |w_i| A_i, B = sum w_i s_i B_i (Zhang et al.)"
    ),
    Method("delta_cat", BOTH, "factor", "sum", summary="the exact sum_i w_i D_i as concatenated factors"),
    Method("delta_svd", BOTH, "factor", "rank", (RANK,), "best rank-k approximation of sum_i w_i D_i"),
    Method("ties", BOTH, "dense", "rank", (DENSITY, MAJORITY_SIGN, RANK), "TIES: trim, elect, disjoint mean"),
    Method("dare_linear", BOTH, "dense", "rank", (DENSITY, SEED, RANK), "DARE random keep, weighted sum"),
    Method(
        "dare_ties", BOTH, "dense", "rank", (DENSITY, MAJORITY_SIGN, SEED, RANK), "DARE keep, TIES election"
    ),
    Method("magnitude_prune", BOTH, "dense", "rank", (DENSITY, RANK), "magnitude trim, weighted sum"),
    Method(
        "core_merge",
        BOTH,
        "dense",
        "rank",
        (DENSITY, CORE_CRITERION, RANK),
        "each input's core kept, overlaps to the larger |T_i|, the rest summed",
    ),
    Method(
        "breadcrumbs",
        BOTH,
        "dense",
        "rank",
        (DENSITY, GAMMA, RANK),
        "Model Breadcrumbs: each delta drops its largest gamma and keeps the next density, weighted sum",
    ),
    Method(
        "knots",
        (LORA.name,),
        "factor",
        "rank_or_sum",
        (RANK_SUM, BLOCK_DENSITY, MAJORITY_SIGN, MERGE),
        "KnOTS: SVD of [T_1 .. T_n], the aligned V_i^T blocks merged (linear or ties)",
    ),
    Method(
        "tsv",
        (LORA.name,),
        "factor",
        "per_input",
        (PER_INPUT_RANK, SCALE),
        "TSV-M: each T_i's top singular triplets, singular vectors orthogonalised across inputs",
    ),
    Method(
        "iso_c",
        (LORA.name,),
        "factor",
        "rank_or_sum",
        (RANK_SUM, SCALE),
        "Iso-C: the exact sum's top-k singular vectors with a flat spectrum (their mean)",
    ),
    Method(
        "della",
        BOTH,
        "dense",
        "rank",
        (DENSITY, RANK, SEED, MAJORITY_SIGN, EPSILON),
        "DELLA: magnitude-ranked random keep rescaled by 1/p, TIES election, disjoint mean",
        check=_della_probabilities,
    ),
):
    register_method(_method)


# ---- plugins: the `pemreg.methods` entry-point group ----------------------------------------------

ENTRY_POINT_GROUP = "pemreg.methods"
# A plugin's function: (the weighted deltas T_i of one module, **its params) -> the merged delta.
PluginFunction = Callable[..., Any]
_PLUGIN_FUNCTIONS: dict[str, PluginFunction] = {}
_PARAM_TYPES: dict[type, Literal["int", "float", "str"]] = {int: "int", float: "float", str: "str"}


def dense_method(
    *, pem_types: Sequence[str] = BOTH, params: Mapping[str, Any] | None = None
) -> Callable[[PluginFunction], PluginFunction]:
    """Declare a plugin's dense method: `fn(deltas, **params)` gets the weighted T_i of one module and
    returns their merge; `params` are its `params:` keys with their defaults (their type is the
    default's). The entry point's name is the method's name."""

    def declare(fn: PluginFunction) -> PluginFunction:
        fn.pemreg_declaration = (tuple(pem_types), dict(params or {}))  # type: ignore[attr-defined]
        return fn

    return declare


def plugin_function(name: str) -> PluginFunction | None:
    _table()
    return _PLUGIN_FUNCTIONS.get(name)


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point that could not join the table: reported (methods list, logs), never a crash."""

    entry_point: str  # name = value
    distribution: str
    error: str


BROKEN: list[BrokenPlugin] = []


def _declared(name: str, fn: Any, provider: str) -> Method:
    declaration = getattr(fn, "pemreg_declaration", None)
    if declaration is None or not callable(fn):
        raise TypeError(f"{fn!r} is not a function declared with @dense_method")
    pem_types, defaults = declaration
    params = []
    for key, default in defaults.items():
        if type(default) not in _PARAM_TYPES:
            raise TypeError(f"parameter {key!r}: default {default!r} is not an int, float or str")
        params.append(Param(key, _PARAM_TYPES[type(default)], default=default, where="params"))
    summary = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
    return Method(name, pem_types, "dense", "rank", (*params, RANK), summary, provider)


def load_plugins(entry_points: Sequence[Any] | None = None) -> list[Method]:
    """Register every `pemreg.methods` entry point (named after its method, pointing at a function
    declared with @dense_method). Its provider is `<distribution>==<version>`, which provenance and
    the cache key carry. A plugin that fails to import, is not declared, or reuses a registered name is
    recorded in BROKEN and skipped."""
    import logging
    from importlib.metadata import entry_points as installed

    found = list(installed(group=ENTRY_POINT_GROUP)) if entry_points is None else list(entry_points)
    added = []
    for ep in found:
        dist = getattr(ep, "dist", None)
        provider = f"{dist.name}=={dist.version}" if dist is not None else "unknown distribution"
        try:
            fn = ep.load()
            method = register_method(_declared(ep.name, fn, provider))
            _PLUGIN_FUNCTIONS[method.name] = fn
            added.append(method)
        except Exception as exc:  # noqa: BLE001 - any plugin failure is reported, never raised
            BROKEN.append(BrokenPlugin(f"{ep.name} = {ep.value}", provider, f"{type(exc).__name__}: {exc}"))
            logging.getLogger(__name__).warning("method plugin %s skipped: %s", ep.name, exc)
    return added
