"""Catalog at scale: 100k adapter versions in PostgreSQL, queried over HTTP through a real server.

    .venv/bin/python benchmarks/catalog_scale.py [--admin-url URL] [--adapters 10000] [--versions 10]

Creates a throwaway database, migrates it, bulk-loads (COPY) adapters, versions, tags and lineage
chains of depth 10 (each composed version has two parents, so the graph is a DAG, not a list),
starts `uvicorn api.app:create_app` on 127.0.0.1, and times list/search and lineage requests with
one keep-alive client. Targets: p95 <= 30 ms list/search, <= 50 ms lineage.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from registry.catalog.migrate import upgrade  # noqa: E402
from registry.service import Registry  # noqa: E402
from registry.service.admin.keys import create_key  # noqa: E402
from registry.settings import Settings  # noqa: E402

CHAIN = 11  # adapters per lineage chain: depth 10 from tail to head
TASKS = ["math", "medicine", "law", "code", "chat", "summarize", "translate", "toxicity", "style", "qa"]
WORDS = [
    "arithmetic",
    "clinical",
    "contracts",
    "python",
    "dialogue",
    "news",
    "german",
    "detox",
    "poetry",
    "trivia",
]
TIERS = ["gold", "silver", "bronze"]


def seed(dsn: str, n_adapters: int, versions: int) -> None:
    """COPY every table in one transaction; ids are assigned here so edges can refer to them."""
    now = datetime.now(UTC)
    rng = random.Random(0)
    files = json.dumps({"adapter_model.safetensors": {"sha256": "0" * 64, "size": 1}})
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO base_models (id, name, revision, source, created_by, created_at) VALUES "
            "(1, 'tiny-llama', 'main', 'tiny-llama', 'bench', now()), "
            "(2, 'tiny-gpt2', 'main', 'tiny-gpt2', 'bench', now()), "
            "(3, 'llama-3.1-8b', 'main', 'meta-llama/Llama-3.1-8B', 'bench', now())"
        )
        with cur.copy(
            "COPY adapters (id, namespace, name, pem_type, task, description, base_model_id, "
            "created_by, created_at, updated_at) FROM STDIN"
        ) as copy:
            for i in range(n_adapters):
                task = TASKS[i % len(TASKS)]
                copy.write_row(
                    (
                        i + 1,
                        f"team{i % 20:02d}",
                        f"adapter-{i:06d}",
                        "ia3" if i % 10 == 9 else "lora",
                        task,
                        f"{WORDS[i % len(WORDS)]} adapter number {i}",
                        1 + i % 3,
                        "bench",
                        now,
                        now,
                    )
                )
        with cur.copy("COPY adapter_tags (adapter_id, key, value) FROM STDIN") as copy:
            for i in range(n_adapters):
                copy.write_row((i + 1, "tier", TIERS[i % 3]))
                copy.write_row((i + 1, "team", f"t{i % 50}"))
        with cur.copy(
            "COPY adapter_versions (id, adapter_id, version, sha256, rank, alpha, use_rslora, "
            "target_modules, dtype, size_bytes, num_parameters, files, extra, artifact_uri, "
            "created_by, created_at) FROM STDIN"
        ) as copy:
            for i in range(n_adapters):
                for v in range(versions):
                    vid = i * versions + v + 1
                    copy.write_row(
                        (
                            vid,
                            i + 1,
                            v + 1,
                            f"{rng.getrandbits(256):064x}",
                            16,
                            32.0,
                            False,
                            '["q_proj", "v_proj"]',
                            "float32",
                            1000,
                            100,
                            files,
                            "{}",
                            f"s3://bench/adapters/x/{vid}",
                            "bench",
                            now,
                        )
                    )
        with cur.copy(
            "COPY lineage_edges (parent_version_id, child_version_id, operator, weight) FROM STDIN"
        ) as copy:
            for i in range(n_adapters):
                if i % CHAIN == 0:
                    continue  # chain head: registered from files
                for v in range(versions):
                    child = i * versions + v + 1
                    copy.write_row(((i - 1) * versions + v + 1, child, "linear", 0.5))
                    copy.write_row(((i - 1) * versions + (v + 1) % versions + 1, child, "linear", -0.25))
        # Namespaces as a migrated deployment has them (internal), plus the shape of an organisation:
        # one private namespace granted to the benchmark's key, and other teams' grants beside it, so
        # every read goes through the access policy's predicate (registry/service/access/policy.py).
        cur.execute(
            "INSERT INTO namespaces (name, visibility, protected_aliases, created_by, created_at, "
            "updated_at) SELECT format('team%s', lpad(n::text, 2, '0')), "
            "CASE WHEN n = 19 THEN 'private' ELSE 'internal' END, '[\"prod\"]', 'bench', now(), now() "
            "FROM generate_series(0, 19) AS n"
        )
        cur.execute(
            "INSERT INTO namespace_grants (namespace, subject, role, granted_by, granted_at) "
            "SELECT format('team%s', lpad((n % 20)::text, 2, '0')), format('group:g%s', n), 'writer', "
            "'bench', now() FROM generate_series(0, 499) AS n UNION ALL "
            "SELECT 'team19', 'key:bench', 'reader', 'bench', now()"
        )
        for table in ("base_models", "adapters", "adapter_versions", "lineage_edges"):
            cur.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "api.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=REPO,
        env=env,
    )
    for _ in range(100):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become ready")


def measure(
    client: httpx.Client, name: str, make_url_: Callable[[random.Random], str], n: int
) -> dict[str, float]:
    rng = random.Random(name)
    for _ in range(10):  # warm-up: connection, plan caches
        client.get(make_url_(rng)).raise_for_status()
    times = []
    for _ in range(n):
        url = make_url_(rng)
        start = time.perf_counter()
        r = client.get(url)
        times.append((time.perf_counter() - start) * 1000)
        r.raise_for_status()
    times.sort()
    return {"p50": statistics.median(times), "p95": times[int(0.95 * len(times)) - 1], "max": times[-1]}


def query_kinds(n_adapters: int, versions: int) -> dict[str, Callable[[random.Random], str]]:
    """Query kind -> URL maker over the catalog `seed` built (shared with catalog_load.py)."""
    chains = n_adapters // CHAIN

    def adapter(i: int) -> str:
        return f"team{i % 20:02d}/adapter-{i:06d}"

    def tail(r: random.Random) -> int:  # last adapter of a chain: 10 levels of ancestors
        return r.randrange(chains) * CHAIN + CHAIN - 1

    return {
        "list first page": lambda r: "/v1/adapters?limit=50",
        "list deep page": lambda r: "/v1/adapters?limit=50&page_token=" + page_token(r, n_adapters),
        "filter task+type": lambda r: f"/v1/adapters?task={r.choice(TASKS)}&pem_type=lora&limit=50",
        "filter base_model": lambda r: "/v1/adapters?base_model=tiny-gpt2&limit=50",
        "filter tag": lambda r: f"/v1/adapters?tag=tier:{r.choice(TIERS)}&tag=team:t{r.randrange(50)}",
        "search q": lambda r: f"/v1/adapters?q={r.choice(WORDS)}&limit=50",
        "search q rare": lambda r: f"/v1/adapters?q=number {r.randrange(n_adapters)}&limit=50",
        "lineage up d10": lambda r: (
            f"/v1/adapters/{adapter(tail(r))}/versions/{r.randrange(1, versions + 1)}"
            "/lineage?direction=up&depth=10"
        ),
        "lineage down d10": lambda r: (
            f"/v1/adapters/{adapter(tail(r) - CHAIN + 1)}/versions/"
            f"{r.randrange(1, versions + 1)}/lineage?direction=down&depth=10"
        ),
        "version by alias": lambda r: f"/v1/adapters/{adapter(r.randrange(n_adapters))}/versions/latest",
        "version by number": lambda r: (
            f"/v1/adapters/{adapter(r.randrange(n_adapters))}/versions/{r.randrange(1, versions + 1)}"
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--admin-url",
        default=os.environ.get(
            "PEMREG_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    ap.add_argument("--adapters", type=int, default=10_000)
    ap.add_argument("--versions", type=int, default=10, help="per adapter (10k x 10 = 100k versions)")
    ap.add_argument("--requests", type=int, default=300, help="per query kind")
    ap.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = ap.parse_args()

    admin = make_url(args.admin_url)
    db = f"pemreg_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    url = admin.set(database=db).render_as_string(hide_password=False)
    dsn = admin.set(drivername="postgresql", database=db).render_as_string(hide_password=False)
    proc = None
    try:
        upgrade(url)
        started = time.perf_counter()
        seed(dsn, args.adapters, args.versions)
        n_versions = args.adapters * args.versions
        print(
            f"seeded {args.adapters} adapters, {n_versions} versions, lineage chains of depth {CHAIN - 1} "
            f"in {time.perf_counter() - started:.1f} s"
        )
        home = Path(tempfile.mkdtemp(prefix="pemreg-bench-"))
        env = {
            **os.environ,
            "PEMREG_DATABASE_URL": url,
            "PEMREG_HOME": str(home),
            "PEMREG_ARTIFACT_STORE": (home / "artifacts").as_uri(),
        }
        (home / "artifacts").mkdir()
        key = create_key(Registry(Settings(database_url=url, home=home)), "bench", "reader")
        port = free_port()
        proc = start_server(env, port)
        kinds = query_kinds(args.adapters, args.versions)
        results = {}
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client:
            for name, fn in kinds.items():
                results[name] = measure(client, name, fn, args.requests)
                res = results[name]
                print(
                    f"{name:<20} p50 {res['p50']:6.1f} ms   p95 {res['p95']:6.1f} ms   "
                    f"max {res['max']:6.1f} ms"
                )
        lineage_ok = all(v["p95"] <= 50 for k, v in results.items() if k.startswith("lineage"))
        list_ok = all(v["p95"] <= 30 for k, v in results.items() if not k.startswith("lineage"))
        print(
            f"targets: list/search p95 <= 30 ms: {'ok' if list_ok else 'MISSED'}; "
            f"lineage p95 <= 50 ms: {'ok' if lineage_ok else 'MISSED'}"
        )
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        if args.keep:
            print(f"database kept: {url}")
        else:
            from registry.catalog.db import dispose_engines

            dispose_engines()
            with psycopg.connect(admin_dsn, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def page_token(r: random.Random, n_adapters: int) -> str:
    import base64

    i = r.randrange(n_adapters)
    raw = json.dumps([f"team{i % 20:02d}", f"adapter-{i:06d}"]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


if __name__ == "__main__":
    main()
