"""Start a composition: as a Prefect deployment run when a Prefect API is configured, else in-process.

Either way the composition row exists (status `pending`, inputs resolved) before anything runs, so
callers get its id at once and bad specs fail before any flow run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from registry.errors import NotFound
from registry.service import Registry
from registry.service import compositions as comps
from registry.spec import CompositionSpec

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
        run = run_deployment(COMPOSE_DEPLOYMENT, parameters={
            "spec": spec.canonical(), "composition_id": comp.id, "trigger": trigger}, timeout=0)
    except ObjectNotFound:
        message = (f"deployment {COMPOSE_DEPLOYMENT} not found on {prefect_api_url()}: start `pemreg worker` "
                   "against this Prefect API")
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
        compose_flow(spec.canonical(), comp.id, trigger)
    except Exception:  # noqa: BLE001 - the flow recorded the failure on the row; the caller reads it there
        pass
    return comps.get(reg, comp.id)


def start_in_background(reg: Registry, spec: CompositionSpec, trigger: str) -> comps.CompositionView:
    """For the REST API on the embedded default: the flow runs on a thread of this process."""
    from .compose import compose_flow, prepare

    comp = prepare(reg, spec, trigger)

    def target() -> None:
        try:
            compose_flow(spec.canonical(), comp.id, trigger)
        except Exception:  # noqa: BLE001 - recorded on the composition row by the flow
            pass

    threading.Thread(target=target, name=f"compose-{comp.id[:8]}", daemon=True).start()
    return comp


def wait(reg: Registry, composition_id: str, on_change: Callable[[comps.CompositionView], None] | None = None,
         timeout: float | None = None) -> comps.CompositionView:
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
