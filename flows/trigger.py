"""Start a composition: as a Prefect deployment run when a Prefect API is configured, else in-process.

Either way the composition row exists (status `pending`, inputs resolved) before anything runs, so
callers get its id at once and bad specs fail before any flow run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext

from registry.errors import NotFound
from registry.service import Registry
from registry.service import compositions as comps
from registry.spec import CompositionSpec

from .context import using

log = logging.getLogger("pemreg.compose")
COMPOSE_DEPLOYMENT = "compose/compose"
POLL_SECONDS = 0.5


def prefect_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def submit_to_deployment(reg: Registry, spec: CompositionSpec, trigger: str) -> comps.CompositionView:
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    from .compose import prepare

    comp = prepare(reg, spec, trigger)
    try:
        run = run_deployment(
            COMPOSE_DEPLOYMENT,
            parameters={"spec": spec.canonical(), "composition_id": comp.id, "trigger": trigger},
            timeout=0,
        )
    except ObjectNotFound:
        message = (
            f"deployment {COMPOSE_DEPLOYMENT} not found on {prefect_api_url()}: start `pemreg worker` "
            "against this Prefect API"
        )
        comps.update(reg, comp.id, status="failed", error=message)
        raise NotFound(message) from None
    except Exception as exc:
        comps.update(reg, comp.id, status="failed", error=f"could not submit to {COMPOSE_DEPLOYMENT}: {exc}")
        raise
    return comps.update(reg, comp.id, flow_run_id=str(run.id))


def run_in_process(reg: Registry, spec: CompositionSpec, trigger: str) -> comps.CompositionView:
    from .compose import compose_flow, prepare

    comp = prepare(reg, spec, trigger)
    try:
        with using(reg):
            compose_flow(spec.canonical(), comp.id, trigger)
    except Exception:  # noqa: BLE001 - the flow recorded the failure on the row; the caller reads it there
        pass
    return comps.get(reg, comp.id)


def start_in_background(
    reg: Registry, spec: CompositionSpec, trigger: str, api_url: str | None = None
) -> comps.CompositionView:
    """For the REST API on the embedded default: the flow runs on a thread of this process, reporting
    to `api_url` (the warm local Prefect server) or, when None, to Prefect's ephemeral server."""
    from .compose import compose_flow, prepare

    comp = prepare(reg, spec, trigger)

    def target() -> None:
        from prefect.settings import PREFECT_API_URL, temporary_settings

        # Prefect reads its settings at import; a per-thread override points this run at the server.
        overrides = temporary_settings(updates={PREFECT_API_URL: api_url}) if api_url else nullcontext()
        try:
            with overrides, using(reg):
                compose_flow(spec.canonical(), comp.id, trigger)
        except Exception:  # the flow recorded the failure on the row; keep the trace for operators
            log.exception("composition %s failed", comp.id)

    threading.Thread(target=target, name=f"compose-{comp.id[:8]}", daemon=True).start()
    return comp


def start(reg: Registry, spec: CompositionSpec, trigger: str) -> comps.CompositionView:
    """What the REST API calls: a deployment run when a Prefect API is configured, else a background run."""
    if prefect_api_url():
        return submit_to_deployment(reg, spec, trigger)
    api_url = None
    if reg.settings.prefect_mode == "local-server":
        from . import local_server

        api_url = local_server.ensure_running(reg.settings.home, reg.settings.local_prefect_port)
    return start_in_background(reg, spec, trigger, api_url)


def wait(
    reg: Registry,
    composition_id: str,
    on_change: Callable[[comps.CompositionView], None] | None = None,
    timeout: float | None = None,
) -> comps.CompositionView:
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        view = comps.get(reg, composition_id)
        if on_change and view.status != last:
            on_change(view)
            last = view.status
        if view.status in comps.TERMINAL:
            return view
        if deadline is not None and time.monotonic() > deadline:
            return view
        time.sleep(POLL_SECONDS)
