"""Runners that execute the compose flow for a `pending` run, and the Prefect probe reconcile uses.

The shells register them at start-up (`install`); `registry.service.compositions.runs.start` picks one by
name, so the service layer never imports this package:
- `deployment`: a run of the `compose/compose` deployment on the configured Prefect API (workers run it);
- `in-process`: the flow in this process, blocking (`pemreg demo`, `PEMREG_WARM_RUNNER=false`);
- `background`: the bounded executor of this process (flows/executor.py: a queue and a fixed pool of
  threads), what the REST server and the local runner use on the embedded default;
- `default`: `deployment` when PREFECT_API_URL is set, else the shell's embedded choice.

The Prefect API URL is passed explicitly (a Prefect settings context built once per URL), never written
to os.environ. Prefect's own logs go to <PEMREG_HOME>/logs/prefect.log; `verbose` also streams them to
stderr.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from registry.errors import NotFound
from registry.service import Registry
from registry.service.compositions import reads as comps
from registry.service.compositions import runs
from registry.service.compositions.reads import CompositionView
from registry.settings import Settings
from registry.spec import CompositionSpec

from .context import using

log = logging.getLogger("pemreg.compose")
COMPOSE_DEPLOYMENT = "compose/compose"
Embedded = Literal["in-process", "background"]
_logs_routed: list[tuple[Path, list[logging.Handler]]] = []


def configured_api_url() -> str | None:
    """PREFECT_API_URL from Prefect's settings (env or profile): the deployment path."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def log_file(settings: Settings) -> Path:
    return settings.home / "logs" / "prefect.log"


def route_prefect_logs(settings: Settings, verbose: bool = False) -> Path:
    """Prefect configures its console logging at import: send its records to a file instead (one line
    on failure is the CLI's contract), and to stderr as well when `verbose`. Checked at every call:
    importing some of Prefect's modules configures its loggers again (their handlers replaced)."""
    import prefect  # noqa: F401 - its logging setup must run before we re-route it

    if not _logs_routed:
        path = log_file(settings)
        if not verbose:
            _quiet_progress_bars()
        path.parent.mkdir(parents=True, exist_ok=True)
        to_file = logging.FileHandler(path, encoding="utf-8")
        to_file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers: list[logging.Handler] = [to_file]
        if verbose:
            handlers.append(logging.StreamHandler(sys.stderr))
        _logs_routed.append((path, handlers))
    path, handlers = _logs_routed[0]
    for name in ("prefect", "prefect.extra"):
        logger = logging.getLogger(name)
        logger.propagate = False
        for handler in handlers:
            if handler not in logger.handlers:
                logger.addHandler(handler)
    return path


def _quiet_progress_bars() -> None:
    """transformers draws a tqdm bar on stderr per model load (evaluation, merging): not in one-line mode."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()  # transformers reads this at import
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


_flow_settings: dict[str | None, tuple[Any, Any]] = {}
_flow_settings_lock = threading.Lock()


@contextmanager
def prefect_api(url: str | None) -> Iterator[None]:
    """Prefect's settings for a flow run we execute and watch ourselves: `url` as its API (None keeps
    the configured one) and no Prefect flow-run heartbeat. Our run heartbeat and reconcile detect a
    lost run; Prefect's heartbeat thread sleeps in 1 s steps and is joined at the end of every flow
    run (0.5 s a run on average, measured). Built once per URL and base settings (a Prefect settings
    copy validates every field: 20-180 ms a run)."""
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import PREFECT_API_URL, PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    context = get_settings_context()
    with _flow_settings_lock:
        base, settings = _flow_settings.get(url, (None, None))
        if base is not context.settings:
            updates: dict[Any, Any] = {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}
            if url is not None:
                updates[PREFECT_API_URL] = url
            settings = context.settings.copy_with_update(updates=updates)
            _flow_settings[url] = (context.settings, settings)
    with SettingsContext(profile=context.profile, settings=settings):
        yield


def embedded_api_url(reg: Registry) -> str | None:
    """The Prefect API an embedded flow run reports to: the warm local server (started on first use).
    None keeps Prefect's own configuration: an API already configured (profile, env, a test harness)
    or, in `ephemeral` mode, its in-process server."""
    if reg.settings.prefect_mode != "local-server" or configured_api_url():
        return None
    from . import local_server

    return local_server.ensure_running(reg.settings.home, reg.settings.local_prefect_port)


def run_compose_flow(
    reg: Registry, run: CompositionView, spec: CompositionSpec, *, api_url: str | None, verbose: bool = False
) -> None:
    """The `compose` flow for one pending run, in this thread. The flow records its outcome on the row."""
    from .compose import compose_flow

    route_prefect_logs(reg.settings, verbose)
    try:
        with prefect_api(api_url), using(reg):
            compose_flow(spec.canonical(), run.id, run.trigger)
    except Exception as exc:  # noqa: BLE001 - the flow recorded the failure on the row
        log.info("composition %s failed: %s", run.id, runs.one_line(exc))


class InProcessRunner:
    """The flow in the calling thread, blocking until the run ends."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def submit(self, reg: Registry, run: CompositionView, spec: CompositionSpec) -> CompositionView:
        run_compose_flow(reg, run, spec, api_url=embedded_api_url(reg), verbose=self.verbose)
        return comps.get(reg, run.id)


class DeploymentRunner:
    def __init__(self, api_url: str | None = None, verbose: bool = False) -> None:
        self.api_url = api_url
        self.verbose = verbose

    def submit(self, reg: Registry, run: CompositionView, spec: CompositionSpec) -> CompositionView:
        from prefect.deployments import run_deployment
        from prefect.exceptions import ObjectNotFound

        route_prefect_logs(reg.settings, self.verbose)
        url = self.api_url or configured_api_url()
        try:
            with prefect_api(url):
                flow_run = run_deployment(
                    COMPOSE_DEPLOYMENT,
                    parameters={"spec": spec.canonical(), "composition_id": run.id, "trigger": run.trigger},
                    timeout=0,
                )
        except ObjectNotFound:
            message = (
                f"deployment {COMPOSE_DEPLOYMENT} not found on {url}: "
                "start `pemreg worker` against this Prefect API"
            )
            runs.fail_if_active(reg, run.id, message)
            raise NotFound(message) from None
        return runs.attach_flow_run(reg, run.id, str(flow_run.id))  # type: ignore[union-attr] # sync call


class DefaultRunner:
    """`deployment` when PREFECT_API_URL is set, else this shell's embedded runner."""

    def __init__(self, embedded: runs.Runner, deployment: DeploymentRunner) -> None:
        self.embedded = embedded
        self.deployment = deployment

    def _choice(self) -> runs.Runner:
        # The operator's switch is the PREFECT_API_URL variable (as documented), not whatever Prefect
        # settings context this thread happens to run in (a test harness, a flow run).
        return self.deployment if os.environ.get("PREFECT_API_URL") else self.embedded

    def admit(self) -> None:
        admit = getattr(self._choice(), "admit", None)
        if admit is not None:
            admit()

    def submit(self, reg: Registry, run: CompositionView, spec: CompositionSpec) -> CompositionView:
        return self._choice().submit(reg, run, spec)


class PrefectProbe:
    """Reads and crashes flow runs on a Prefect API (`api_url`, else the configured one)."""

    def __init__(self, api_url: str | None = None) -> None:
        self.api_url = api_url

    def state(self, flow_run_id: str) -> runs.FlowRunState | None:
        from prefect.client.orchestration import get_client
        from prefect.exceptions import ObjectNotFound

        with prefect_api(self.api_url), get_client(sync_client=True) as client:
            try:
                flow_run = client.read_flow_run(UUID(flow_run_id))
            except ObjectNotFound:
                return None
        if flow_run.state is None:
            return None
        return runs.FlowRunState(flow_run.state.type.value, flow_run.state.timestamp)

    def crash(self, flow_run_id: str, message: str) -> None:
        from prefect.client.orchestration import get_client
        from prefect.states import Crashed

        with prefect_api(self.api_url), get_client(sync_client=True) as client:
            client.set_flow_run_state(UUID(flow_run_id), Crashed(message=message), force=True)


def probe_for(settings: Settings) -> PrefectProbe | None:
    """The Prefect API this home's runs report to, when one is up; else None (heartbeats decide)."""
    if os.environ.get("PREFECT_API_URL"):
        return PrefectProbe()
    if settings.prefect_mode == "local-server":
        from . import local_server

        state = local_server.status(settings.home)
        return PrefectProbe(state["url"]) if state else None
    return None


def install(settings: Settings, embedded: Embedded, *, verbose: bool = False) -> None:
    """Register the runners (and the reconcile probe) with the service layer. Imports no Prefect."""
    from .executor import shared_executor

    in_process, background = InProcessRunner(verbose), shared_executor(settings)
    deployment = DeploymentRunner(verbose=verbose)
    runs.register_runner("in-process", in_process)
    runs.register_runner("background", background)
    runs.register_runner("deployment", deployment)
    runs.register_runner(
        "default", DefaultRunner(in_process if embedded == "in-process" else background, deployment)
    )
    runs.register_probe(_LazyProbe(settings))


class _LazyProbe:
    """Decides at reconcile time which Prefect API to ask (a local server may start later)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def available(self) -> bool:
        return probe_for(self.settings) is not None

    def _probe(self) -> PrefectProbe:
        probe = probe_for(self.settings)
        if probe is None:
            raise RuntimeError("no Prefect API is running for this home")
        return probe

    def state(self, flow_run_id: str) -> runs.FlowRunState | None:
        return self._probe().state(flow_run_id)

    def crash(self, flow_run_id: str, message: str) -> None:
        self._probe().crash(flow_run_id, message)


def resubmit(reg: Registry, run: CompositionView, spec: CompositionSpec) -> None:
    """reconcile's `restart`: a retried run goes back through the default runner."""
    runs.get_runner("default").submit(reg, run, spec)
