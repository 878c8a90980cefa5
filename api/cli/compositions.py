"""`pemreg compositions list|show|reconcile`, `pemreg worker`, `pemreg prefect-server` (local mode).

Catalog reads and operator commands; they import the service layer (and Prefect only where a command
needs it). `pemreg compose` lives in compose.py, which imports none of them."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .compose import (
    LIST_HELP,
    SHOW_HELP,
    JsonOpt,
    LimitOpt,
    RunIdArg,
    StatusOpt,
    install_runners,
    print_runs,
    print_show,
)
from .deps import registry
from .output import console, err_console, print_json

compositions_app = typer.Typer(help="Composition runs.", no_args_is_help=True)
prefect_app = typer.Typer(help="The Prefect server kept warm for the embedded default.", no_args_is_help=True)


@compositions_app.command("list", help=LIST_HELP)
def list_(
    status: StatusOpt = None,
    limit: LimitOpt = 50,
    page_token: Annotated[str | None, typer.Option("--page-token", help="from the previous page")] = None,
    json_out: JsonOpt = False,
) -> None:
    from registry.service.compositions import reads as comps

    page = comps.list_compositions(registry(), status=status, limit=limit, page_token=page_token)
    if json_out:
        print_json(page)
        return
    print_runs(page.items)
    if page.next_page_token:
        console.print(f"more: --page-token {page.next_page_token}", markup=False)


@compositions_app.command("show", help=SHOW_HELP)
def show(composition_id: RunIdArg, json_out: JsonOpt = False) -> None:
    from registry.service.compositions import reads as comps

    view = comps.get(registry(), composition_id)
    if json_out:
        print_json(view)
        return
    print_show(view)


@compositions_app.command("reconcile")
def reconcile(json_out: JsonOpt = False) -> None:
    """End runs whose process died: pending/running without a heartbeat for the stale-after period
    (PEMREG_RUN_STALE_AFTER_SECONDS) become failed, or are retried where their spec asks `retries`
    (on the warm local runner, or a `pemreg worker` when PREFECT_API_URL is set)."""
    from flows.runners import resubmit
    from registry.service.compositions import runs

    install_runners("runner")
    done = runs.reconcile(registry(), restart=resubmit)
    if json_out:
        print_json([vars(d) for d in done])
        return
    for d in done:
        console.print(f"{d.composition_id} {d.action}: {d.message}", markup=False, soft_wrap=True)
    console.print(f"{len(done)} run(s) reconciled", markup=False)


def reconcile_at_start() -> None:
    """`pemreg serve` start: runs lost by an earlier server end now, and again every
    PEMREG_RECONCILE_INTERVAL_SECONDS while it serves (a daemon thread). Runs this process holds are
    never ended by it (registry.service.compositions.runs.register_owner)."""
    import threading

    from flows.runners import resubmit
    from registry.service.admin import metrics
    from registry.service.compositions import runs

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
    app.command("worker")(worker)
    app.add_typer(compositions_app, name="compositions")
    app.add_typer(prefect_app, name="prefect-server")
