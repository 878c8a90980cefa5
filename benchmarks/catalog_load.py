"""Issue 15 item 2: the catalog under load, 1M versions in PostgreSQL, 1 and 16 concurrent clients.

    .venv/bin/python benchmarks/catalog_load.py [--workers 2] [--clients 1,16] [--keep]
    .venv/bin/python benchmarks/catalog_load.py --database-url URL   # reuse a seeded, kept database

Seeds a throwaway database like benchmarks/catalog_scale.py (COPY; 100k adapters x 10 versions,
tags, lineage chains of depth 10 with two parents per composed version), starts `pemreg serve` on
127.0.0.1, and drives it from a SECOND process: a small load tool (HTTP/1.1 on asyncio streams) with
one keep-alive connection per client, a bounded number of requests per client and a time cap. Each
client cycles through the query kinds (list, filters, search, lineage, version lookups), so every
kind is measured under the same mixed load. Prints p50/p95 per kind, errors and requests/second.

Targets (docs/scale.md): p95 <= 20 ms for one client, <= 50 ms under 16 clients, 0 errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.catalog_scale import free_port, query_kinds, seed  # noqa: E402
from registry.catalog.location import DbLimits  # noqa: E402

# ---- the load tool (runs in its own process) ------------------------------------------------------


class _Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a GET and its whole response, nothing else.
    httpx spent ~1.4 ms of CPU per request here, a fifth of what the server, PostgreSQL and the load
    tool spend together on the same 2 cores; the requests, their mix and the closed loop are the same."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.headers = f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n\r\n"
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, url: str) -> int:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(f"GET {quote(url, safe='/?&=:@%')} HTTP/1.1\r\n{self.headers}".encode())
            head = (await reader.readuntil(b"\r\n\r\n")).lower()
            if b"\r\ntransfer-encoding: chunked" in head:
                while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                    await reader.readexactly(size + 2)
                await reader.readuntil(b"\r\n")
            else:
                at = head.index(b"\r\ncontent-length:") + 17
                await reader.readexactly(int(head[at : head.index(b"\r\n", at)]))
            return int(head[9:12])
        except (OSError, ValueError, asyncio.IncompleteReadError):
            writer.close()
            self.streams = None  # the next request opens a new connection
            raise

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()


async def _client(
    conn: _Connection, urls: list[tuple[str, str]], deadline: float, out: list[tuple[str, float, bool]]
) -> None:
    for kind, url in urls:
        if time.perf_counter() > deadline:
            return
        started = time.perf_counter()
        try:
            ok = await conn.get(url) == 200
        except (OSError, ValueError, asyncio.IncompleteReadError):
            ok = False
        out.append((kind, (time.perf_counter() - started) * 1000, ok))


async def _load(base: str, key: str, clients: int, per_client: int, seconds: float, n: int, v: int) -> dict:
    kinds = query_kinds(n, v)
    names = list(kinds)
    rng = random.Random(clients)
    plans = [
        [(names[(c + i) % len(names)], kinds[names[(c + i) % len(names)]](rng)) for i in range(per_client)]
        for c in range(clients)
    ]
    address = urlsplit(base)
    conns = [_Connection(address.hostname or "127.0.0.1", address.port or 80, key) for _ in range(clients)]
    try:
        # warm-up: each client's connection and every kind once (plan caches, pools)
        await asyncio.gather(*(_warm(conn, [kinds[k](rng) for k in names]) for conn in conns))
        records: list[tuple[str, float, bool]] = []
        started = time.perf_counter()
        cpu_started = time.process_time()
        deadline = started + seconds
        runs = (_client(conn, plan, deadline, records) for conn, plan in zip(conns, plans, strict=True))
        await asyncio.gather(*runs)
        elapsed = time.perf_counter() - started
        # The load tool shares the cores with the server and PostgreSQL: its CPU is part of the budget.
        client_cpu = time.process_time() - cpu_started
    finally:
        for conn in conns:
            conn.close()
    by_kind: dict[str, dict[str, float]] = {}
    for kind in names:
        times = sorted(ms for k, ms, _ in records if k == kind)
        if times:
            by_kind[kind] = {
                "n": len(times),
                "p50": times[len(times) // 2],
                "p95": times[max(0, int(0.95 * len(times)) - 1)],
                "errors": sum(1 for k, _, ok in records if k == kind and not ok),
            }
    return {"requests": len(records), "seconds": elapsed, "errors": sum(1 for r in records if not r[2]),
            "kinds": by_kind, "client_cpu_ms": client_cpu * 1000 / max(1, len(records))}  # fmt: skip


async def _warm(conn: _Connection, urls: list[str]) -> None:
    for url in urls:
        await conn.get(url)


def load_tool(args: argparse.Namespace) -> None:
    result = asyncio.run(
        _load(
            args.load, args.key, args.clients_n, args.per_client, args.seconds, args.adapters, args.versions
        )
    )
    print(json.dumps(result))


# ---- the benchmark --------------------------------------------------------------------------------


def start_serve(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[bytes]:
    pemreg = str(Path(sys.executable).parent / "pemreg")
    cmd = [pemreg, "serve", "--port", str(port), "--workers", str(workers), "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("pemreg serve did not become ready")


def cpu_by_pid(pids: list[int]) -> dict[int, float]:
    """user + system CPU seconds of these processes and all their descendants (Linux /proc)."""
    out: dict[int, float] = {}
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in out:
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return out


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU spent between two snapshots by the processes alive at the second (new ones in full);
    a process that exited in between (a closed overflow connection) is not counted."""
    return sum(t - before.get(pid, 0.0) for pid, t in after.items())


def backend_pids(dsn: str, database: str) -> list[int]:
    """The PostgreSQL backends serving the benchmark database (the server's pooled connections)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (database,)
        ).fetchall()
    return [int(r[0]) for r in rows]


def run_load(
    base: str, key: str, clients: int, args: argparse.Namespace, server: int, dsn: str, database: str
) -> dict[str, Any]:
    """One concurrency level; also the CPU the server and its database backends spent per request,
    which on a shared machine says more than latency: 2 dedicated cores serve 2000 / (ms) req/s."""
    per_client = max(args.requests // clients, 2 * 11)
    cmd = [sys.executable, __file__, "--load", base, "--key", key, "--clients-n", str(clients)]
    cmd += ["--per-client", str(per_client), "--seconds", str(args.seconds)]
    cmd += ["--adapters", str(args.adapters), "--versions", str(args.versions)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    before = cpu_by_pid([server]), cpu_by_pid(backend_pids(dsn, database))
    out, _ = proc.communicate(timeout=args.seconds + 120)
    after = cpu_by_pid([server]), cpu_by_pid(backend_pids(dsn, database))
    if proc.returncode != 0:
        raise RuntimeError(f"load tool failed ({proc.returncode})")
    result = dict(json.loads(out.strip().splitlines()[-1]))
    n = result["requests"] or 1
    result["server_cpu_ms"] = cpu_spent(before[0], after[0]) * 1000 / n
    result["db_cpu_ms"] = cpu_spent(before[1], after[1]) * 1000 / n
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--admin-url",
        default=os.environ.get(
            "PEMREG_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    ap.add_argument("--database-url", help="an already seeded database (from --keep): skip seeding")
    ap.add_argument("--adapters", type=int, default=100_000)
    ap.add_argument("--versions", type=int, default=10, help="per adapter (100k x 10 = 1M versions)")
    ap.add_argument("--clients", default="1,16", help="concurrency levels, comma-separated")
    ap.add_argument("--requests", type=int, default=2200, help="per concurrency level (bounded)")
    ap.add_argument("--seconds", type=float, default=60.0, help="time cap per concurrency level")
    ap.add_argument("--workers", type=int, default=2, help="pemreg serve --workers")
    ap.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    # load-tool mode (the second process)
    ap.add_argument("--load", help=argparse.SUPPRESS)
    ap.add_argument("--key", help=argparse.SUPPRESS)
    ap.add_argument("--clients-n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--per-client", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load:
        load_tool(args)
        return

    from registry.catalog.migrate import upgrade
    from registry.service import Registry
    from registry.service.admin.keys import create_key
    from registry.settings import Settings

    admin = make_url(args.admin_url)
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    created = None
    if args.database_url:
        url = args.database_url
    else:
        created = f"pemreg_load_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{created}"')
        url = admin.set(database=created).render_as_string(hide_password=False)
    proc = None
    try:
        upgrade(url)
        if created:
            started = time.perf_counter()
            dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            seed(dsn, args.adapters, args.versions)
            print(f"seeded {args.adapters * args.versions} versions in {time.perf_counter() - started:.0f} s")
        home = Path(tempfile.mkdtemp(prefix="pemreg-load-"))
        (home / "artifacts").mkdir()
        env = {
            **os.environ,
            "PEMREG_DATABASE_URL": url,
            "PEMREG_HOME": str(home),
            "PEMREG_ARTIFACT_STORE": (home / "artifacts").as_uri(),
        }
        name = f"load-{uuid.uuid4().hex[:6]}"
        key = create_key(Registry(Settings(database_url=url, home=home)), name, "reader")
        # The seed grants its private namespace (team19) to `key:bench`; this key reads it the same way,
        # so every URL the load tool picks exists for it (else ~1.5% of requests are 404s, counted as errors).
        with psycopg.connect(make_url(url).set(drivername="postgresql").render_as_string(False)) as conn:
            conn.execute(
                "INSERT INTO namespace_grants (namespace, subject, role, granted_by, granted_at) "
                "VALUES ('team19', %s, 'reader', 'bench', now())",
                (f"key:{name}",),
            )
        port = free_port()
        proc = start_serve(env, port, args.workers)
        base = f"http://127.0.0.1:{port}"
        limits = DbLimits()  # what the server sizes its pool by, unless the environment says otherwise
        pool = env.get("PEMREG_DB_POOL_SIZE", str(limits.pool_size))
        overflow = env.get("PEMREG_DB_POOL_MAX_OVERFLOW", str(limits.pool_max_overflow))
        reads = env.get("PEMREG_DB_READ_POOL_SIZE", str(limits.read_pool_size))
        print(
            f"{args.adapters * args.versions} versions; pemreg serve --workers {args.workers}; "
            f"PostgreSQL sessions per worker: catalog reads {reads}, the rest {pool} + {overflow} overflow; "
            f"cores {os.cpu_count()}"
        )
        levels = [int(c) for c in args.clients.split(",")]
        database = make_url(url).database or ""
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        results = {c: run_load(base, key, c, args, proc.pid, dsn, database) for c in levels}
        # fmt: off
        print(f"\n{'query kind':<20}" + "".join(f" {f'{c} cl p50':>10} {f'{c} cl p95':>10}" for c in levels))
        for kind in results[levels[0]]["kinds"]:
            cells = "".join(
                f" {results[c]['kinds'][kind]['p50']:>10.1f} {results[c]['kinds'][kind]['p95']:>10.1f}"
                for c in levels if kind in results[c]["kinds"]
            )
            print(f"{kind:<20}{cells}")
        # fmt: on
        for c in levels:
            r = results[c]
            worst = max(k["p95"] for k in r["kinds"].values())
            target = 20 if c == 1 else 50
            print(
                f"{c:>2} clients: {r['requests']} requests in {r['seconds']:.1f} s = "
                f"{r['requests'] / r['seconds']:.0f} req/s, errors {r['errors']}, worst p95 {worst:.1f} ms "
                f"(target {target} ms: {'ok' if worst <= target and not r['errors'] else 'MISSED'}); "
                f"CPU per request: server {r['server_cpu_ms']:.1f} ms + postgres {r['db_cpu_ms']:.1f} ms "
                f"+ load tool {r['client_cpu_ms']:.1f} ms; "
                f"load {os.getloadavg()[0]:.2f}"
            )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        if args.keep or not created:
            print(f"database kept: {url}")
        else:
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)')


if __name__ == "__main__":
    main()
