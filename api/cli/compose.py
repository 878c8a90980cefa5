"""`pemreg compose` (local mode) and `pemreg runner start|stop|status`, with the printing helpers
remote_compose.py and compositions.py share.

On the embedded default the spec goes to the warm local runner (flows/local_runner.py: started on first
use, reused, the same bounded executor as `pemreg serve`), which checks it, answers a cache hit from
the catalog or runs the Prefect `compose` flow, and streams the run's progress back. This module imports
neither the service layer, SQLAlchemy, torch nor Prefect: the command costs its interpreter, Typer and
Rich. PEMREG_WARM_RUNNER=false runs the flow in this process instead (the service layer imported here).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from registry.errors import RegistryError
from registry.service.compositions.status import RunStatus

from .output import console, err_console, id_table, print_json, print_table

if TYPE_CHECKING:
    from registry.views import SearchRecord

SpecArg = Annotated[Path, typer.Argument(help="spec (YAML or JSON)", exists=False)]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="resolve, check, print interference; compose nothing")
]
WaitOpt = Annotated[bool, typer.Option("--wait", help="follow a submitted run until it ends")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]
StatusOpt = Annotated[
    str | None,
    typer.Option("--status", help="only runs in this status: " + ", ".join(s.value for s in RunStatus)),
]
# registry.service.compositions.reads.MAX_LIMIT (tests/test_local_runner.py checks they agree): read
# there, it would import SQLAlchemy into every compose command.
LIST_MAX = 500
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=LIST_MAX, help="at most this many runs")]
RunIdArg = Annotated[str, typer.Argument(help="run id, or any unique prefix of it")]
LIST_HELP = "Runs, newest first. Ids are full run ids (any unique prefix works with `show`)."
SHOW_HELP = "One run: status, output, metrics, inputs."
FALSE = {"0", "false", "no", "off"}

runner_app = typer.Typer(
    help="The warm local runner that composes for `pemreg compose` (started on first use).",
    no_args_is_help=True,
)


def install_runners(embedded: str = "in-process", verbose: bool = False) -> None:
    """Register the flow runners with the service layer (imports no Prefect: a cache hit stays fast).
    `runner`: this CLI hands runs to the warm local runner (a retry found by `compositions reconcile`)."""
    from flows.runners import install

    from .deps import registry

    settings = registry().settings
    if embedded == "runner":
        install(settings, "in-process", verbose=verbose)
        if settings.warm_runner:
            from flows.local_runner import register_handoff

            register_handoff(_home())
        return
    install(settings, "background" if embedded == "background" else "in-process", verbose=verbose)


# ---- printing (local and remote) ---------------------------------------------------------------------


def print_dry_run(report: dict[str, Any]) -> None:
    """The `--dry-run` report, from its JSON form (the runner's and the server's answer alike)."""
    inputs = report["inputs"]
    console.print("resolved inputs", markup=False)
    table = id_table("input", "version", "sha256", "weight", "rank")
    for item in inputs:
        table.add_row(
            item["name"],
            str(item["version"]),
            item["sha256"][:12],
            f"{item['weight']:+g}",
            str(item.get("rank") or "-"),
        )
    print_table(table)
    console.print("interference (deltas)", markup=False)
    pairs = id_table("pair", "rms cosine", "mean cosine", "max |cosine|", "modules")
    labels = [f"{i['name']}@{i['version']}" for i in inputs]
    for p in report["interference"]["pairs"]:
        pairs.add_row(
            f"{labels[p['i']]} / {labels[p['j']]}",
            f"{p['rms_cosine']:.4f}",
            f"{p['mean_cosine']:+.4f}",
            f"{p['max_abs_cosine']:.4f}",
            str(p["modules"]),
        )
    print_table(pairs)
    overlaps = id_table("pair", "subspace overlap", "core overlap", "modules")
    for p in report["interference"]["pairs"]:
        core = p.get("core_overlap")
        overlaps.add_row(
            f"{labels[p['i']]} / {labels[p['j']]}",
            f"{p.get('subspace_overlap', 0.0):.4f}",
            "-" if core is None else f"{core:.4f}",
            str(p["modules"]),
        )
    console.print("overlaps (RMS over modules)", markup=False)
    print_table(overlaps)
    for warning in report["interference"].get("warnings", []):
        err_console.print(f"warning: {warning}", markup=False)
    print_controls(report.get("controls") or {})
    search = report.get("search")
    if search:
        console.print(
            f"search: {search['candidates']} candidates ({len(search['methods'])} methods x "
            f"{len(search['scale'])} scales x {search['weight_candidates']} weight candidates), "
            f"{search['evaluations']} evaluations (+ up to {search['parent_evaluations']} of the parents)",
            markup=False,
        )
    console.print(
        f"cache key {report['cache_key']} ({report['method']}); nothing composed (dry run)", markup=False
    )


def print_controls(controls: dict[str, dict[str, Any]]) -> None:
    """Each method's result against the exact weighted sum: does it win by shrinking?"""
    if not controls:
        return
    console.print("controls: result vs exact weighted sum (per module, then the whole adapter)", markup=False)
    table = id_table(
        "method", columns=("median ||R||/||E||", "rms ratio", "median cosine", "min cosine", "total ratio")
    )

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    for name, c in controls.items():
        table.add_row(
            name,
            fmt(c.get("median_norm_ratio")),
            fmt(c.get("rms_norm_ratio")),
            fmt(c.get("median_cosine")),
            fmt(c.get("min_cosine")),
            fmt(c.get("total_norm_ratio")),
        )
    print_table(table)


def print_result(view: Any) -> None:
    """A run (the service's CompositionView, the client's Composition, or the runner's JSON)."""
    status = RunStatus(view.status)
    if status == RunStatus.SUCCEEDED and view.output:
        hit = " (cache hit: not recomputed)" if view.cache_hit else ""
        console.print(
            f"succeeded: {view.output.name}@{view.output.version} sha256:{view.output.sha256[:12]}{hit}"
            f"  composition {view.id}",
            markup=False,
        )
    elif not status.terminal:
        console.print(f"{view.status}: composition {view.id}", markup=False)
    for name, value in view.metrics.items():
        console.print(f"  {name} = {value:.6g}", markup=False)


def fail_line(view: Any) -> str | None:
    """The one stderr line of a failed or rejected run; None for any other status."""
    if RunStatus(view.status) not in (RunStatus.FAILED, RunStatus.REJECTED):
        return None
    return f"error: composition {view.id} {view.status}: {view.error or 'no message recorded'}"


def print_runs(items: Sequence[Any]) -> None:
    # Ids and names whole (never wrapped or cut), so they can be pasted back; a list under 80 columns.
    table = id_table("id", "name", "output", columns=("method", "status", "trigger", "created"))
    for c in items:
        out = f"{c.output.name}@{c.output.version}" if c.output else "-"
        table.add_row(
            c.id,
            c.name,
            out,
            c.method,
            c.status + (" (cache hit)" if c.cache_hit else ""),
            c.trigger,
            f"{c.created_at:%Y-%m-%d %H:%M:%S}" if c.created_at else "-",
        )
    print_table(table)


def print_show(view: Any) -> None:
    print_result(view)
    if RunStatus(view.status) in (RunStatus.FAILED, RunStatus.REJECTED):
        console.print(f"{view.status}: {view.error or '-'}", markup=False)
    attempt = getattr(view, "attempt", None) or "-"
    console.print(f"  id {view.id}  cache key {view.cache_key or '-'}  attempt {attempt}", markup=False)
    console.print(
        f"  flow run {view.flow_run_id or '-'}  trigger {view.trigger}  by {view.principal}",
        markup=False,
    )
    inputs = id_table("input", "referenced as", "weight", "applied")
    for item in view.inputs:
        inputs.add_row(
            f"{item.name}@{item.version}", item.ref, f"{item.weight:+g}", f"{item.applied_weight:+g}"
        )
    if view.inputs:
        print_table(inputs)
    if view.search is not None:
        print_search(view.search)
    control = dict((getattr(view, "interference", None) or {}).get("control") or {})
    if control:
        print_controls({str(control.pop("method", view.method)): control})


def print_search(search: SearchRecord) -> None:
    """A lambda search's candidates: weights tried, metrics, gates; the winner marked."""
    goal = search.objective.get("goal", "?")
    console.print(
        f"search ({search.strategy}, {goal} {search.objective.get('evaluation', '?')}): "
        f"{len(search.candidates)} candidates, winner #{search.winner}",
        markup=False,
    )
    searched = sorted({name for c in search.candidates for name in c.weights})
    metrics = sorted({name for c in search.candidates for name in c.metrics})
    table = id_table("#", *searched, columns=("method", "scale", *metrics, "gates", "winner"))
    for c in search.candidates:
        table.add_row(
            str(c.index),
            *(f"{c.weights[n]:+g}" if n in c.weights else "-" for n in searched),
            c.method or "-",
            f"{c.scale:g}",
            *(f"{c.metrics[n]:.6g}" if n in c.metrics else "-" for n in metrics),
            "pass" if c.gates_passed else "fail",
            "*" if c.index == search.winner else "",
        )
    print_table(table)


def finish(view: Any, data: Any, json_out: bool) -> None:
    """Print the run (JSON as received, or text) and exit 1 with one line when it failed."""
    print_json(data) if json_out else print_result(view)
    failed = fail_line(view)
    if failed:
        err_console.print(failed, markup=False, soft_wrap=True)
        raise typer.Exit(1)


# ---- pemreg compose ----------------------------------------------------------------------------------


def compose(
    spec_file: SpecArg,
    dry: DryRunOpt = False,
    wait_: WaitOpt = False,
    json_out: JsonOpt = False,
    verbose: Annotated[
        bool,
        typer.Option("--verbose", help="stream Prefect's logs to stderr (always in <home>/logs/prefect.log)"),
    ] = False,
) -> None:
    """Compose adapters from a spec. A spec already composed over the same input digests (same cache
    key) is answered from the catalog at once; otherwise the Prefect `compose` flow runs it (on the
    warm local runner on the embedded default, on a `pemreg worker` when PREFECT_API_URL is set).

    A failed or rejected run prints one line on stderr and exits 1."""
    if not spec_file.is_file():
        raise typer.BadParameter(f"{spec_file} is not a file", param_hint="SPEC")
    if os.environ.get("PEMREG_WARM_RUNNER", "").strip().lower() in FALSE:
        _compose_here(spec_file, dry, wait_, json_out, verbose)
        return
    try:
        text = spec_file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RegistryError(f"spec: {spec_file} is not UTF-8 text") from None
    from flows import local_runner

    state = _runner()
    message = {"spec_text": text, "cwd": os.getcwd(), "wait": wait_, "verbose": verbose}
    if dry:
        report = _last(local_runner.request(state, {"op": "validate", **message}))["report"]
        print_json(report) if json_out else print_dry_run(report)
        return
    data = _follow(local_runner.request(state, {"op": "compose", **message}), wait_, verbose)
    finish(as_view(data), data, json_out)


def _home() -> Path:
    from .remote import home

    return home().resolve()


def _runner() -> Any:
    from flows import local_runner

    def starting() -> None:
        if err_console.is_terminal:  # scripts keep the one-line-on-failure contract
            err_console.print(
                "starting the local runner (once; it stays warm for later commands) ...", markup=False
            )

    try:
        return local_runner.ensure_running(_home(), on_start=starting)
    except local_runner.RunnerError as exc:
        raise RegistryError(str(exc)) from None


def _last(replies: Iterator[dict[str, Any]]) -> dict[str, Any]:
    for reply in replies:
        if reply["type"] == "error":
            raise RegistryError(reply["message"])
        if reply["type"] == "done":
            return reply
    raise RegistryError("the local runner closed the connection without an answer")


def _follow(replies: Iterator[dict[str, Any]], wait: bool, verbose: bool) -> dict[str, Any]:
    """The runner's messages until `done`: a spinner with the run's step on a terminal, Prefect's
    log lines on stderr with --verbose. Ctrl-C leaves the run going in the runner."""
    from flows.local_runner import RunnerGone

    run: dict[str, Any] | None = None
    with _spinner(wait) as spin:
        try:
            for reply in replies:
                kind = reply["type"]
                if kind == "error":
                    raise RegistryError(reply["message"])
                if kind in ("submitted", "done"):
                    run = reply["run"]
                    if kind == "done":
                        return run
                    spin(f"composition {run['id']}: {run['status']}")
                elif kind == "event" and run is not None:
                    _show_event(reply, run, spin, verbose)
        except RunnerGone as exc:
            where = f" during composition {run['id']}" if run else ""
            raise RegistryError(f"{exc}{where}") from None
        except KeyboardInterrupt:
            if run is None:
                raise
            raise RegistryError(
                f"interrupted; composition {run['id']} goes on in the local runner "
                f"(`pemreg compositions show {run['id']}`)"
            ) from None
    raise RegistryError("the local runner closed the connection without an answer")


def _show_event(reply: dict[str, Any], run: dict[str, Any], spin: Any, verbose: bool) -> None:
    if reply.get("kind") == "log":
        step = f"{reply['step']}: " if reply.get("step") else ""
        if verbose:  # else stderr keeps to one line on failure; every line is in the log file
            err_console.print(f"{reply.get('level', 'INFO')} {step}{reply['message']}", markup=False)
        spin(f"composition {run['id']}: running · {step}{reply['message']}"[:160])
        return
    if reply.get("status"):
        run["status"] = reply["status"]
    spin(f"composition {run['id']}: {run['status']}")


@contextmanager
def _spinner(active: bool) -> Iterator[Any]:
    if not (active and err_console.is_terminal):
        yield lambda text: None
        return
    with err_console.status("submitting") as status:
        yield lambda text: status.update(text)


def as_view(data: dict[str, Any]) -> Any:
    """Attribute access over a run's JSON, for the printers."""
    output = data.get("output")
    return SimpleNamespace(**{**data, "output": SimpleNamespace(**output) if output else None})


def _compose_here(spec_file: Path, dry: bool, wait_: bool, json_out: bool, verbose: bool) -> None:
    """PEMREG_WARM_RUNNER=false: the flow in this process (pays torch and Prefect imports each time)."""
    from registry.service.compositions import runs
    from registry.service.compositions.dry_run import dry_run
    from registry.spec import load_spec

    from .deps import registry

    spec = load_spec(spec_file)
    reg = registry()
    if dry:
        report = dry_run(reg, spec).to_dict()
        print_json(report) if json_out else print_dry_run(report)
        return
    install_runners("in-process", verbose)
    _reconcile_quietly(reg)
    view = runs.start(reg, spec, "cli", runner="default")
    if wait_ and not view.status.terminal:
        with _spinner(True) as spin:
            view = runs.wait(reg, view.id, lambda v: spin(f"composition {v.id}: {v.status}"))
    finish(view, view, json_out)


def _reconcile_quietly(reg: Any) -> None:
    """Before composing in this process: a run of this home lost with its process ends now."""
    from flows.runners import resubmit
    from registry.service.compositions import runs

    try:
        runs.reconcile(reg, restart=resubmit)
    except Exception as exc:  # noqa: BLE001 - never in the way of the user's command
        err_console.print(f"warning: reconcile failed: {runs.one_line(exc)}", markup=False)


# ---- pemreg runner -----------------------------------------------------------------------------------


@runner_app.command("start")
def runner_start() -> None:
    """Start the local runner for this environment (if not running) and print its pid."""
    state = _runner()
    console.print(f"running (pid {state.pid}, socket {state.socket})", markup=False)


@runner_app.command("stop")
def runner_stop() -> None:
    """Stop this home's local runners; each first finishes the runs it holds (at most 30 s)."""
    from flows import local_runner

    stopped = local_runner.stop(_home())
    console.print(f"stopped {len(stopped)} runner(s)" if stopped else "not running", markup=False)


@runner_app.command("status")
def runner_status() -> None:
    """This home's local runners: pid and socket."""
    from flows import local_runner

    found = local_runner.running(_home())
    for state in found:
        console.print(f"running (pid {state.pid}, socket {state.socket}, log {state.log})", markup=False)
    if not found:
        console.print("not running", markup=False)


def register(app: typer.Typer) -> None:
    app.command("compose")(compose)
    app.add_typer(runner_app, name="runner")
