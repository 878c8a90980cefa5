"""Issue 24: webhook delivery under load, bounded and on loopback.

    .venv/bin/python benchmarks/webhook_load.py [--events 10000] [--producers 4] [--deliverers 1]
    .venv/bin/python benchmarks/webhook_load.py --sqlite          # the embedded default

Creates a throwaway catalog (PostgreSQL by default), one webhook pointed at a receiver on 127.0.0.1,
and starts `--deliverers` `pemreg serve` processes (each delivers; 0 = a deliverer thread in this
process). `--producers` threads then make real catalog changes (a version's status toggled, one event
each) until `--events` events are committed, and the run waits until the receiver has every event and
the outbox has drained. Reported: lost and duplicated events, the outbox left pending, produce and
drain rates, the delivery lag (event commit -> arrival at the receiver) p50/p95/p99/max. The delivery
rate of that phase is bounded by how fast changes are produced, so a second phase measures capacity:
`--drain` events committed at once (a few transactions), timed from the commit to the last arrival,
beside its anchor: the same receiver's rate for plain keep-alive POSTs from as many threads as the
deliverer has, with no catalog in the way (drain/s over POST/s is the pipeline's cost).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

ADMIN_URL = os.environ.get(
    "PEMREG_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


# ---- the receiver ---------------------------------------------------------------------------------


@dataclass
class Arrivals:
    lock: threading.Lock = field(default_factory=threading.Lock)
    first: dict[str, float] = field(default_factory=dict)  # webhook-id -> lag (s) at first arrival
    duplicates: int = 0
    posts: int = 0


def start_receiver(arrivals: Arrivals) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            now = time.time()
            msg_id = self.headers.get("webhook-id", "")
            with arrivals.lock:
                arrivals.posts += 1
                if msg_id in arrivals.first:
                    arrivals.duplicates += 1
                elif msg_id.startswith("msg_"):
                    stamp = json.loads(body)["timestamp"].replace("Z", "+00:00")
                    arrivals.first[msg_id] = now - datetime.fromisoformat(stamp).timestamp()
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    return server


# ---- the catalog ----------------------------------------------------------------------------------


def create_database() -> str:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"pemreg_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from registry.catalog.db import dispose_engines

    dispose_engines()
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


@dataclass
class Report:
    events: int
    producers: int
    deliverers: str
    lost: int
    duplicates: int
    pending_after: int
    produce_seconds: float
    drain_seconds: float  # phase 1: first commit -> last arrival
    lag_ms: dict[str, float]
    drain_events: int
    drain_only_seconds: float  # phase 2: a committed backlog, commit -> last arrival
    anchor_posts_per_s: float
    load: tuple[float, float, float]

    @property
    def delivered_per_s(self) -> float:
        return self.events / self.drain_seconds if self.drain_seconds else 0.0

    def lines(self) -> list[str]:
        lag = self.lag_ms
        return [
            f"events {self.events} from {self.producers} producers; deliverers: {self.deliverers}; "
            f"load {self.load[0]:.2f} {self.load[1]:.2f} {self.load[2]:.2f}",
            f"lost {self.lost}  duplicated {self.duplicates}  outbox pending after {self.pending_after}",
            f"produced in {self.produce_seconds:.1f} s ({self.events / self.produce_seconds:.0f}/s); "
            f"delivered in {self.drain_seconds:.1f} s ({self.delivered_per_s:.0f}/s)",
            f"lag ms: p50 {lag['p50']:.0f}  p95 {lag['p95']:.0f}  p99 {lag['p99']:.0f}  max {lag['max']:.0f}",
            f"capacity: a backlog of {self.drain_events} drained in {self.drain_only_seconds:.1f} s "
            f"({self.drain_per_s:.0f}/s); anchor: plain POSTs to the same receiver "
            f"{self.anchor_posts_per_s:.0f}/s; "
            f"drain/s : POST/s = {self.drain_per_s / self.anchor_posts_per_s:.2f}",
        ]

    @property
    def drain_per_s(self) -> float:
        return self.drain_events / self.drain_only_seconds if self.drain_only_seconds else 0.0


def _percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {k: float("nan") for k in ("p50", "p95", "p99", "max")}
    q = statistics.quantiles(values, n=100, method="inclusive")
    return {"p50": q[49] * 1000, "p95": q[94] * 1000, "p99": q[98] * 1000, "max": max(values) * 1000}


def _anchor(url: str, threads: int, total: int) -> float:
    """POSTs/s of plain keep-alive requests to the receiver over the same transport the deliverer uses
    (httpcore), from as many threads: the floor of any delivery pipeline."""
    import httpcore

    body = json.dumps(
        {"type": "version.status_changed", "timestamp": "2026-01-01T00:00:00Z", "data": {}}
    ).encode()
    per = max(1, total // threads)
    headers = [
        (b"Host", url.split("/")[2].encode()),
        (b"Content-Type", b"application/json"),
        (b"Content-Length", str(len(body)).encode()),
        (b"webhook-id", b"anchor"),
    ]
    pool = httpcore.ConnectionPool(max_connections=threads)

    def run() -> None:
        for _ in range(per):
            pool.request("POST", url, headers=headers, content=body)

    started = time.perf_counter()
    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    pool.close()
    return per * threads / elapsed


def _drain_phase(reg: Any, arrivals: Arrivals, count: int, timeout: float) -> float:
    """Commit `count` events in a few transactions, then time commit -> last arrival."""
    from registry.catalog.db import transaction
    from registry.service.events import outbox
    from registry.webhooks.types import EventData, EventType

    if count <= 0:
        return 0.0
    with arrivals.lock:
        before = len(arrivals.first)
    for start in range(0, count, 1000):
        with transaction(reg.sessions) as session:
            for i in range(start, min(count, start + 1000)):
                data = EventData(
                    name="load/p0", namespace="load", version=1, status="deprecated", actor=str(i)
                )
                outbox.emit(session, EventType.VERSION_STATUS_CHANGED, data)
    committed = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with arrivals.lock:
            if len(arrivals.first) - before >= count:
                break
        time.sleep(0.02)
    return time.perf_counter() - committed


def _serve(env: dict[str, str], work: Path, i: int) -> subprocess.Popen[bytes]:
    import httpx

    from benchmarks.catalog_scale import free_port

    port = free_port()
    log = (work / f"serve-{i}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "serve", "--port", str(port), "--log-level", "warning"],
        env={**env, "PEMREG_HOME": str(work / f"home-{i}")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"pemreg serve {i} did not start: {(work / f'serve-{i}.log').read_text()[-2000:]}")


def run(
    *,
    events: int,
    producers: int = 4,
    deliverers: int = 1,
    database_url: str | None = None,
    concurrency: int = 16,
    drain: int = 3000,
    timeout: float = 900.0,
    work: Path | None = None,
) -> Report:
    """One load run (also what tests/test_webhooks_load.py calls, with fewer events)."""
    from registry import service
    from registry.catalog.migrate import upgrade
    from registry.service import Registry
    from registry.service.catalog import lifecycle
    from registry.service.events import deliveries, webhooks
    from registry.service.events.deliverer import Deliverer
    from registry.settings import Settings
    from registry.synthetic import make_lora

    work = work or Path(tempfile.mkdtemp(prefix="pemreg-webhook-load-"))
    arrivals = Arrivals()
    receiver = start_receiver(arrivals)
    port = receiver.server_address[1]
    url = database_url or f"sqlite:///{work / 'reg.db'}"
    upgrade(url)
    settings = Settings(
        home=work / "home",
        database_url=url,
        artifact_store=(work / "artifacts").as_uri(),
        principal="bench",
        webhook_allowed_hosts=f"127.0.0.1:{port}",
        webhook_concurrency=concurrency,
        webhook_poll_seconds=0.2,
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    service.add_base_model(reg, "tiny-llama", source="hf-internal-testing/tiny-llama")
    for p in range(producers):
        service.register_adapter(reg, make_lora(work / f"lora-{p}", seed=p + 1), f"load/p{p}")
    webhooks.create_webhook(reg, url=f"http://127.0.0.1:{port}/hook", events=["version.status_changed"])

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEMREG_", "AWS_"))}
    env |= {
        "PYTHONPATH": str(REPO),
        "PEMREG_DATABASE_URL": url,
        "PEMREG_ARTIFACT_STORE": settings.resolved_artifact_store,
        "PEMREG_WEBHOOK_ALLOWED_HOSTS": settings.webhook_allowed_hosts,
        "PEMREG_WEBHOOK_CONCURRENCY": str(concurrency),
        "PEMREG_WEBHOOK_POLL_SECONDS": "0.2",
    }
    procs = [_serve(env, work, i) for i in range(deliverers)]
    thread = Deliverer(reg).start() if deliverers == 0 else None
    try:
        per = [events // producers + (1 if p < events % producers else 0) for p in range(producers)]

        def produce(p: int) -> None:
            for i in range(per[p]):
                lifecycle.set_status(reg, f"load/p{p}@1", "deprecate" if i % 2 == 0 else "restore")

        first_commit = time.time()
        started = time.perf_counter()
        threads = [threading.Thread(target=produce, args=(p,)) for p in range(producers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        produce_seconds = time.perf_counter() - started
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with arrivals.lock:
                if len(arrivals.first) >= events:
                    break
            time.sleep(0.05)
        drain_seconds = time.time() - first_commit
        with arrivals.lock:
            lags = list(arrivals.first.values())
        drain_only = _drain_phase(reg, arrivals, drain, timeout)
        pending = 0
        for _ in range(100):  # the last results being recorded
            pending = deliveries.pending_count(reg)
            if pending == 0:
                break
            time.sleep(0.1)
    finally:
        if thread is not None:
            thread.stop()
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    with arrivals.lock:
        duplicates = arrivals.duplicates
        delivered_all = len(arrivals.first)
    anchor = _anchor(f"http://127.0.0.1:{port}/hook", concurrency, 3000)
    receiver.shutdown()
    receiver.server_close()
    return Report(
        events=events,
        producers=producers,
        deliverers=f"{deliverers} pemreg serve" if deliverers else "a thread of this process",
        lost=events + drain - delivered_all,
        duplicates=duplicates,
        pending_after=pending,
        produce_seconds=produce_seconds,
        drain_seconds=drain_seconds,
        lag_ms=_percentiles(lags),
        drain_events=drain,
        drain_only_seconds=drain_only,
        anchor_posts_per_s=anchor,
        load=os.getloadavg(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--producers", type=int, default=4)
    parser.add_argument("--deliverers", type=int, default=1, help="pemreg serve processes; 0 = a thread here")
    parser.add_argument("--concurrency", type=int, default=16, help="PEMREG_WEBHOOK_CONCURRENCY")
    parser.add_argument("--drain", type=int, default=3000, help="events of the capacity phase")
    parser.add_argument("--sqlite", action="store_true", help="the embedded default instead of PostgreSQL")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    url = None if args.sqlite else create_database()
    try:
        report = run(
            events=args.events,
            producers=args.producers,
            deliverers=args.deliverers,
            database_url=url,
            concurrency=args.concurrency,
            drain=args.drain,
            timeout=args.timeout,
        )
    finally:
        if url:
            drop_database(url)
    print("\n".join(report.lines()))
    sys.exit(0 if report.lost == 0 and report.pending_after == 0 else 1)


if __name__ == "__main__":
    main()
