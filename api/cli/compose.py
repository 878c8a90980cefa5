"""`pemreg compose`, `pemreg compositions list|show`, `pemreg worker`, `pemreg prefect-server`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from registry.service import Registry
from registry.service.compositions import reads as comps
from registry.service.compositions import runs
from registry.service.compositions.dry_run import DryRun, dry_run
from registry.service.compositions.status import RunStatus
from registry.spec import load_spec

from .deps import registry
from .output import console, err_console, id_table, print_json, print_table

# Shared with remote_compose.py (same options, same help, same printing): this module imports no
# Prefect or torch at import time; the flow runners are imported inside the local commands only.
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
LimitOpt = Annotated[int, typer.Option("--limit", min=1, max=comps.MAX_LIMIT, help="at most this many runs")]
RunIdArg = Annotated[str, typer.Argument(help="run id, or any unique prefix of it")]
LIST_HELP = "Runs, newest first. Ids are full run ids (any unique prefix works with `show`)."
SHOW_HELP = "One run: status, output, metrics, inputs."

compositions_app = typer.Typer(help="Composition runs.", no_args_is_help=True)
prefect_app = typer.Typer(help="The Prefect server kept warm for the embedded default.", no_args_is_help=True)


def install_runners(embedded: str = "in-process", verbose: bool = False) -> None:
    """Register the flow runners with the service layer (imports no Prefect: a cache hit stays fast)."""
    from flows.runners import install

    install(registry().settings, "background" if embedded == "background" else "in-process", verbose=verbose)


def print_dry_run(report: DryRun) -> None:
    console.print("resolved inputs", markup=False)
    table = id_table("input", "version", "sha256", "weight", "rank")
    for item in report.inputs:
        table.add_row(
            item.name, str(item.version), item.sha256[:12], f"{item.weight:+g}", str(item.rank or "-")
        )
    print_table(table)
    console.print("interference (deltas)", markup=False)
    pairs = id_table("pair", "rms cosine", "mean cosine", "max |cosine|", "modules")
    for p in report.interference["pairs"]:
        pairs.add_row(
            f"{report.inputs[p['i']].label} / {report.inputs[p['j']].label}",
            f"{p['rms_cosine']:.4f}",
            f"{p['mean_cosine']:+.4f}",
            f"{p['max_abs_cosine']:.4f}",
            str(p["modules"]),
        )
    print_table(pairs)
    for warning in report.interference.get("warnings", []):
        err_console.print(f"warning: {warning}", markup=False)
    console.print(f"cache key {report.cache_key} ({report.method}); nothing composed (dry run)", markup=False)


def print_result(view: Any) -> None:
    """A run (the service's CompositionView, or the client's Composition in remote mode)."""
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
    for item in view.inputs:
        console.print(
            f"  input {item['name']}@{item['version']} weight {item['weight']:+g} "
            f"(referenced as {item['ref']})",
            markup=False,
        )


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
    key) is answered from the catalog at once; otherwise the Prefect `compose` flow runs it (in this
    process on the embedded default, on a `pemreg worker` when PREFECT_API_URL is set).

    A failed or rejected run prints one line on stderr and exits 1."""
    if not spec_file.is_file():
        raise typer.BadParameter(f"{spec_file} is not a file", param_hint="SPEC")
    spec = load_spec(spec_file)
    reg = registry()
    if dry:
        report = dry_run(reg, spec)
        print_json(report.to_dict()) if json_out else print_dry_run(report)
        return
    install_runners("in-process", verbose)
    _reconcile_quietly(reg)
    view = runs.start(reg, spec, "cli", runner="default")
    if wait_ and not view.status.terminal:
        if err_console.is_terminal:
            with err_console.status(f"composition {view.id}: {view.status}") as status:
                view = runs.wait(reg, view.id, lambda v: status.update(f"composition {v.id}: {v.status}"))
        else:
            view = runs.wait(reg, view.id)
    print_json(view) if json_out else print_result(view)
    failed = fail_line(view)
    if failed:
        err_console.print(failed, markup=False, soft_wrap=True)
        raise typer.Exit(1)


@compositions_app.command("list", help=LIST_HELP)
def list_(
    status: StatusOpt = None,
    limit: LimitOpt = 50,
    page_token: Annotated[str | None, typer.Option("--page-token", help="from the previous page")] = None,
    json_out: JsonOpt = False,
) -> None:
    page = comps.list_compositions(registry(), status=status, limit=limit, page_token=page_token)
    if json_out:
        print_json(page)
        return
    print_runs(page.items)
    if page.next_page_token:
        console.print(f"more: --page-token {page.next_page_token}", markup=False)


def reconcile_at_start() -> None:
    """`pemreg serve` start: runs lost by an earlier server (or its background threads) end now, and
    again every PEMREG_RECONCILE_INTERVAL_SECONDS while it serves (a daemon thread)."""
    import threading

    from flows.runners import resubmit
    from registry.service.admin import metrics

    install_runners("background")
    reg = registry()

    def once() -> None:
        try:
            done = runs.reconcile(reg, restart=resubmit)
            metrics.runs_reconciled(d.action for d in done)
            for d in done:
                err_console.print(f"reconciled composition {d.composition_id}: {d.action}", markup=False)
        except Exception as exc:  # noqa: BLE001 - the catalog briefly away must not stop the server
            err_console.print(f"warning: reconcile failed: {runs.one_line(exc)}", markup=False)

    def loop() -> None:
        while True:
            time.sleep(reg.settings.reconcile_interval_seconds)
            once()

    once()
    threading.Thread(target=loop, name="reconcile", daemon=True).start()


def _reconcile_quietly(reg: Registry) -> None:
    """Before composing: a run of this home lost with its process ends now (one indexed query when
    nothing is stale), so the embedded default needs no server to keep rows honest."""
    from flows.runners import resubmit

    try:
        runs.reconcile(reg, restart=resubmit)
    except Exception as exc:  # noqa: BLE001 - never in the way of the user's command
        err_console.print(f"warning: reconcile failed: {runs.one_line(exc)}", markup=False)


@compositions_app.command("reconcile")
def reconcile(json_out: JsonOpt = False) -> None:
    """End runs whose process died: pending/running without a heartbeat for the stale-after period
    (PEMREG_RUN_STALE_AFTER_SECONDS) become failed, or are retried where their spec asks `retries`."""
    from flows.runners import resubmit

    install_runners("in-process")
    done = runs.reconcile(registry(), restart=resubmit)
    if json_out:
        print_json([vars(d) for d in done])
        return
    for d in done:
        console.print(f"{d.composition_id} {d.action}: {d.message}", markup=False, soft_wrap=True)
    console.print(f"{len(done)} run(s) reconciled", markup=False)


@compositions_app.command("show", help=SHOW_HELP)
def show(composition_id: RunIdArg, json_out: JsonOpt = False) -> None:
    view = comps.get(registry(), composition_id)
    if json_out:
        print_json(view)
        return
    print_show(view)


def worker(
    limit: Annotated[int, typer.Option("--limit", help="max concurrent runs")] = 2,
    subprocess: Annotated[
        bool, typer.Option("--subprocess", help="one interpreter per run (flow.serve)")
    ] = False,
    metrics_port: Annotated[
        int | None, typer.Option("--metrics-port", min=1, max=65535, help="serve Prometheus metrics here")
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="interface of --metrics-port")
    ] = "127.0.0.1",
) -> None:
    """Serve the compose, recompose-stale and scheduled deployments (Prefect).

    Runs execute in this warm process by default (no per-run interpreter start-up). At start and every
    PEMREG_RECONCILE_INTERVAL_SECONDS it reconciles runs whose worker was lost. It also delivers
    webhooks, and with --metrics-port serves its Prometheus metrics (GET /metrics)."""
    import os

    if not os.environ.get("PREFECT_API_URL") and registry().settings.prefect_mode == "local-server":
        from flows import local_server

        settings = registry().settings
        # The worker process is Prefect's client for its whole life: point it at the warm local server.
        os.environ["PREFECT_API_URL"] = local_server.ensure_running(
            settings.home, settings.local_prefect_port
        )
    if metrics_port is not None:
        from registry.service.admin import metrics
        from registry.service.events.deliveries import pending_count

        reg = registry()
        metrics.serve_http(metrics_port, metrics_host, lambda: pending_count(reg))
    from flows.worker import run_worker

    run_worker(limit=limit, subprocess=subprocess)


@prefect_app.command("start")
def prefect_start() -> None:
    """Start the local Prefect server (if not running) and print its URL."""
    from flows import local_server

    settings = registry().settings
    console.print(local_server.ensure_running(settings.home, settings.local_prefect_port), markup=False)


@prefect_app.command("stop")
def prefect_stop() -> None:
    """Stop the local Prefect server of this home."""
    from flows import local_server

    stopped = local_server.stop(registry().settings.home)
    console.print("stopped" if stopped else "not running", markup=False)


@prefect_app.command("status")
def prefect_status() -> None:
    """Whether the local Prefect server of this home runs, and where."""
    from flows import local_server

    state = local_server.status(registry().settings.home)
    console.print(f"running at {state['url']} (pid {state['pid']})" if state else "not running", markup=False)


def register(app: typer.Typer) -> None:
    app.command("compose")(compose)
    app.command("worker")(worker)
    app.add_typer(compositions_app, name="compositions")
    app.add_typer(prefect_app, name="prefect-server")
