"""The one composition loop, module by module, shared by `compose` (adapters in memory) and
`compose_files` (adapter folders, compose/stream.py).

Both run `run`: checks on the inputs' skeletons (shapes and configs only), the output planned from
them, then for each module path in turn: that module of every input that has it (`Source.module`:
already in memory, or read and validated from the file), `Composer.combine`, and the output module
handed to a `Sink` (kept in memory, or appended to the output file). Memory is one module of every
input plus the output module, beyond what the sources themselves hold.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any, Protocol

import torch

from registry.compose.base import Composer, Entry, MethodParams, get_composer
from registry.compose.checks import check_adapters, check_params
from registry.compose.controls import ModuleControl, control_summary, module_control
from registry.compose.core_merge import ActivationNorms, overlap_summary
from registry.compose.device import DEFAULT_CPU_THREADS, compute_device, torch_threads
from registry.compose.heap import map_large_blocks
from registry.compose.methods import get_method
from registry.pem import PemAdapter, torch_dtype
from registry.pem.base import dtype_name


@dataclass
class CompositionResult:
    adapter: PemAdapter
    method: str
    params: dict[str, Any]  # method parameters as used (rank resolved)
    modules: dict[str, dict[str, Any]]  # per-module report: rank, retained_energy (delta_svd, pruning)
    seconds: float
    device: str
    summary: dict[str, Any] = field(default_factory=dict)  # e.g. min/mean retained energy

    def report(self) -> dict[str, Any]:
        """JSON-serialisable provenance record."""
        return {
            "method": self.method,
            "params": self.params,
            "summary": self.summary,
            "modules": self.modules,
            "seconds": self.seconds,
            "device": self.device,
        }


def compose(
    adapters: Sequence[PemAdapter],
    weights: Sequence[float],
    method: str = "linear",
    *,
    rank: int | None = None,
    density: float | None = None,
    majority_sign: str = "total",
    seed: int = 0,
    threads: int | None = DEFAULT_CPU_THREADS,
    check_base_model: bool = True,
    core_criterion: str = "magnitude",
    activation_norms: Mapping[str, ActivationNorms] | None = None,
    method_params: Mapping[str, Any] | None = None,
    scale: float = 1.0,
) -> CompositionResult:
    """sum_i weights[i] * adapters[i] by `method` (formulas in docs/methods.md), its delta times
    `scale` (a search's `scale` dimension: LoRA B scaled, (IA)3 1 + scale (l - 1)). Raises InvalidInput /
    IncompatibleAdapters before any arithmetic; the result's tensors are on CPU in the inputs' dtype.
    `threads`: torch intra-op threads during the call (see device.py; None = leave as is).
    `check_base_model=False` skips the config base-name comparison (the catalog checked it).
    core_merge: `core_criterion` and, for 'importance', the base's `activation_norms` per module path
    (registry.evaluation.calibration computes them). `method_params`: the spec's `params:` (the
    method's other declared parameters)."""
    params = MethodParams(
        method,
        rank,
        density,
        majority_sign,
        seed,
        core_criterion,
        activation_norms,
        dict(method_params or {}),
    )
    with torch_threads(threads):
        sink = MemorySink()
        return run([InMemory(a) for a in adapters], weights, params, check_base_model, sink, scale)


class Source(Protocol):
    """One input: its skeleton (config, module shapes) and its modules, one at a time."""

    @property
    def skeleton(self) -> PemAdapter: ...

    def module(self, path: str) -> Any: ...


@dataclass(frozen=True)
class InMemory:
    """An adapter already in memory as a Source (its own modules are the skeleton's)."""

    adapter: PemAdapter

    @property
    def skeleton(self) -> PemAdapter:
        return self.adapter

    def module(self, path: str) -> Any:
        return self.adapter.modules[path]


class Sink(Protocol):
    """Where output modules go, in the planned order; `close` returns the result's modules."""

    def open(self, kind: Any, planned: Mapping[str, Any]) -> None: ...

    def write(self, path: str, module: Any) -> None: ...

    def close(self, config: dict[str, Any]) -> Mapping[str, Any]: ...

    def abort(self) -> None: ...


class ModuleObserver(Protocol):
    """Measures the inputs beside the composition, in the same pass (e.g. the interference report's
    `InterferenceMeter`): each input is read once for both."""

    def start(self, skeletons: Sequence[PemAdapter]) -> None: ...

    def observe(self, path: str, modules: Sequence[Any | None]) -> None: ...


class MemorySink:
    def __init__(self) -> None:
        self.modules: dict[str, Any] = {}

    def open(self, kind: Any, planned: Mapping[str, Any]) -> None:
        pass

    def write(self, path: str, module: Any) -> None:
        self.modules[path] = module

    def close(self, config: dict[str, Any]) -> Mapping[str, Any]:
        return self.modules

    def abort(self) -> None:
        self.modules.clear()


@dataclass(frozen=True)
class Prepared:
    """What the loop settles before any arithmetic."""

    params: MethodParams  # rank resolved
    composer: Composer
    device: torch.device
    out_dtype: torch.dtype
    paths: list[str]  # module paths, sorted: the output's module order


def prepare(
    adapters: Sequence[PemAdapter], weights: Sequence[float], params: MethodParams, check_base_model: bool
) -> Prepared:
    """Checks (parameters, then adapters: shapes and configs only) and the resolved plan."""
    check_params(len(adapters), weights, params)
    check_adapters(adapters, params, check_base_model=check_base_model)
    composer = get_composer(adapters[0].pem_type)
    return Prepared(
        params=composer.resolve(adapters, params),
        composer=composer,
        device=compute_device(),
        out_dtype=reduce(torch.promote_types, (torch_dtype(a.dtype) for a in adapters)),
        paths=sorted({p for a in adapters for p in a.modules}),
    )


def entries_at(path: str, modules: Sequence[Mapping[str, Any]], weights: Sequence[float]) -> list[Entry]:
    """One module's inputs: (position, weight, module) for every input that has the module."""
    return [
        Entry(i, float(w), m[path])
        for i, (m, w) in enumerate(zip(modules, weights, strict=True))
        if path in m
    ]


def run(
    sources: Sequence[Source],
    weights: Sequence[float],
    params: MethodParams,
    check_base_model: bool,
    sink: Sink,
    scale: float = 1.0,
    observers: Sequence[ModuleObserver] = (),
) -> CompositionResult:
    """The composition loop (see the module docstring). Each output module is measured against its
    inputs' exact weighted sum (compose/controls.py) after `scale` is applied: the control speaks of
    what is registered. `observers` see each module of every input as it is read (None where an input
    lacks it), after the checks passed."""
    started = time.perf_counter()
    map_large_blocks()  # freed module buffers return to the OS: peak RSS flat in the inputs (heap.py)
    skeletons = [s.skeleton for s in sources]
    prep = prepare(skeletons, weights, params, check_base_model)
    shapes = [s.modules for s in skeletons]
    composer = prep.composer
    planned = {
        path: composer.plan(path, entries_at(path, shapes, weights), prep.params, prep.out_dtype)
        for path in prep.paths
    }
    reports: dict[str, dict[str, Any]] = {}
    controls: dict[str, ModuleControl] = {}
    for observer in observers:
        observer.start(skeletons)
    sink.open(skeletons[0].kind, planned)
    try:
        for path in prep.paths:
            read = [s.module(path) if path in s.skeleton.modules else None for s in sources]
            for observer in observers:
                observer.observe(path, read)
            entries = [
                Entry(i, float(w), m)
                for i, (m, w) in enumerate(zip(read, weights, strict=True))
                if m is not None
            ]
            module, reports[path] = composer.combine(path, entries, prep.params, prep.device, prep.out_dtype)
            if scale != 1.0:
                module = module.scaled(scale)
            controls[path] = module_control(module, entries, prep.device)
            reports[path]["control"] = controls[path].report()
            sink.write(path, module)
            del read, entries, module  # before the next module is read: one module of each input held
        config = composer.output_config(skeletons, planned, prep.params)
        modules = sink.close(config)
    except BaseException:
        sink.abort()
        raise
    adapter = PemAdapter(
        pem_type=skeletons[0].pem_type, config=config, modules=dict(modules), dtype=dtype_name(prep.out_dtype)
    )
    result = finish(adapter, prep, reports, started)
    result.summary["control"] = control_summary(controls.values())
    if scale != 1.0:  # recorded only when applied, so runs without a scale keep their record
        result.params["scale"] = scale
    return result


def finish(
    adapter: PemAdapter,
    prepared: Prepared,
    reports: dict[str, dict[str, Any]],
    started: float,
) -> CompositionResult:
    params = prepared.params
    energies = [r["retained_energy"] for r in reports.values() if "retained_energy" in r]
    summary: dict[str, Any] = (
        {"min_retained_energy": min(energies), "mean_retained_energy": sum(energies) / len(energies)}
        if energies
        else {}
    )
    used: dict[str, Any] = {
        "rank": params.rank,
        "density": params.declared("density"),  # knots: its default 1.0 when not given
        "majority_sign": params.majority_sign,
        "seed": params.seed,
    }
    method = get_method(params.method)
    if method is not None and method.takes("core_criterion"):
        used["core_criterion"] = params.core_criterion
    if method is not None:
        used.update(method.resolved_params(params.extra))  # `params:` as used, defaults filled
    if any("core" in r for r in reports.values()):
        summary["core_overlap"] = overlap_summary(reports)
    return CompositionResult(
        adapter=adapter,
        method=params.method,
        params=used,
        modules=reports,
        seconds=time.perf_counter() - started,
        device=str(prepared.device),
        summary=summary,
    )
