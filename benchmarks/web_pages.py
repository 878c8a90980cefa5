"""Web catalog pages at 100k versions in PostgreSQL, timed through a real server.

    .venv/bin/python benchmarks/web_pages.py [--admin-url URL] [--adapters 10000] [--versions 10]

Seeds a throwaway database exactly as benchmarks/catalog_scale.py does (COPY: adapters, versions,
tags, lineage chains of depth 10 where every composed version has two parents), starts uvicorn with
`api.app:create_app` on 127.0.0.1, signs in through the sign-in form like a browser, and times each
page kind with one keep-alive client. The figure is the request's wall time seen by a loopback
client: server time plus well under a millisecond of loopback. Target (issue 12): p95 <= 150 ms.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.catalog_scale import (  # noqa: E402
    CHAIN,
    TASKS,
    TIERS,
    WORDS,
    free_port,
    measure,
    page_token,
    seed,
    start_server,
)
from registry.catalog.migrate import upgrade  # noqa: E402
from registry.service import Registry  # noqa: E402
from registry.service.admin.keys import create_key  # noqa: E402
from registry.settings import Settings  # noqa: E402

TARGET_MS = 150.0


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
    ap.add_argument("--requests", type=int, default=200, help="per page kind")
    ap.add_argument("--keep", action="store_true", help="keep the database (prints its URL)")
    args = ap.parse_args()

    admin = make_url(args.admin_url)
    db = f"pemreg_webbench_{uuid.uuid4().hex[:8]}"
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
        print(
            f"seeded {args.adapters} adapters, {args.adapters * args.versions} versions "
            f"in {time.perf_counter() - started:.1f} s"
        )
        with psycopg.connect(dsn) as conn:
            digests = [row[0] for row in conn.execute("SELECT sha256 FROM adapter_versions LIMIT 2000")]
        home = Path(tempfile.mkdtemp(prefix="pemreg-webbench-"))
        (home / "artifacts").mkdir()
        env = {
            **os.environ,
            "PEMREG_DATABASE_URL": url,
            "PEMREG_HOME": str(home),
            "PEMREG_ARTIFACT_STORE": (home / "artifacts").as_uri(),
        }
        key = create_key(Registry(Settings(database_url=url, home=home)), "bench", "reader")
        port = free_port()
        proc = start_server(env, port)
        chains = args.adapters // CHAIN

        def adapter(i: int) -> str:
            return f"team{i % 20:02d}/adapter-{i:06d}"

        def tail(r: random.Random) -> int:  # last adapter of a chain: 10 levels of ancestors
            return r.randrange(chains) * CHAIN + CHAIN - 1

        def version(r: random.Random) -> int:
            return r.randrange(1, args.versions + 1)

        kinds: dict[str, Callable[[random.Random], str]] = {
            "catalog first page": lambda r: "/",
            "catalog deep page": lambda r: "/?page_token=" + page_token(r, args.adapters),
            "catalog task+type": lambda r: f"/?task={r.choice(TASKS)}&pem_type=lora",
            "catalog base model": lambda r: "/?base_model=tiny-gpt2",
            "catalog tag": lambda r: f"/?tag=tier%3D{r.choice(TIERS)}",
            "catalog search": lambda r: f"/?q={r.choice(WORDS)}",
            "adapter page": lambda r: f"/adapters/{adapter(r.randrange(args.adapters))}",
            "version page": lambda r: f"/adapters/{adapter(tail(r))}/versions/{version(r)}",
            "lineage graph d10": lambda r: f"/adapters/{adapter(tail(r))}/versions/{version(r)}/lineage",
            "digest search": lambda r: f"/digest?sha256={r.choice(digests)}",
            "compositions": lambda r: "/compositions",
        }
        results = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            signed = client.post("/signin", data={"key": key, "next": "/"}, follow_redirects=False)
            if signed.status_code != 303 or "pemreg_session" not in client.cookies:
                raise RuntimeError(f"sign-in failed: {signed.status_code} {signed.text[:200]}")
            for name, fn in kinds.items():
                res = measure(client, name, fn, args.requests)
                results[name] = res
                print(
                    f"{name:<20} p50 {res['p50']:6.1f} ms   p95 {res['p95']:6.1f} ms   "
                    f"max {res['max']:6.1f} ms   (p95/target {res['p95'] / TARGET_MS:.2f})"
                )
            # The same reads as JSON through REST, in the same run: what the page adds beyond the
            # catalog queries (templates, layout, session check) under whatever load the machine has.
            bearer = {"Authorization": f"Bearer {key}"}
            rest = {
                "REST list (ref)": lambda r: "/v1/adapters?limit=50",
                "REST lineage up (ref)": lambda r: (
                    f"/v1/adapters/{adapter(tail(r))}/versions/{version(r)}/lineage?direction=up&depth=10"
                ),
            }
            for name, fn in rest.items():
                client.headers.update(bearer)
                res = measure(client, name, fn, args.requests)
                del client.headers["Authorization"]
                p50, p95, top = res["p50"], res["p95"], res["max"]
                print(f"{name:<20} p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   max {top:6.1f} ms")
            nodes = client.get(f"/adapters/{adapter(CHAIN - 1)}/versions/1/lineage").text.count(
                " data-label="
            )
        worst = max(results.items(), key=lambda kv: kv[1]["p95"])
        print(f"lineage graph of a chain tail draws {nodes} nodes")
        print(
            f"worst page p95 {worst[1]['p95']:.1f} ms ({worst[0]}); target <= {TARGET_MS:.0f} ms: "
            f"{'ok' if worst[1]['p95'] <= TARGET_MS else 'MISSED'}"
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


if __name__ == "__main__":
    main()
