"""What the access policy costs a read: the same requests as a granted reader key (the namespace
predicate inside every query) and as an admin key (no predicate), side by side.

    .venv/bin/python benchmarks/policy_cost.py [--adapters 10000] [--versions 10] [--requests 200]

Seeds a throwaway PostgreSQL database as benchmarks/catalog_scale.py does (20 namespaces, one private
and granted to the reader, 500 other grants), starts one server, and times each query kind for both
keys. Prints p50 / p95 per key and the reader / admin ratio of p95 with the load average beside them;
the target is a ratio <= 1.5 for every kind (the catalog_scale.py targets hold for the reader).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.catalog_scale import free_port, measure, query_kinds, seed, start_server  # noqa: E402
from registry.catalog.migrate import upgrade  # noqa: E402
from registry.service import Registry  # noqa: E402
from registry.service.admin.keys import create_key  # noqa: E402
from registry.settings import Settings  # noqa: E402

TARGET_RATIO = 1.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--admin-url",
        default=os.environ.get(
            "PEMREG_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    ap.add_argument("--adapters", type=int, default=10_000)
    ap.add_argument("--versions", type=int, default=10)
    ap.add_argument("--requests", type=int, default=200, help="per query kind and key")
    args = ap.parse_args()

    admin = make_url(args.admin_url)
    db = f"pemreg_policy_{uuid.uuid4().hex[:8]}"
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    url = admin.set(database=db).render_as_string(hide_password=False)
    dsn = admin.set(drivername="postgresql", database=db).render_as_string(hide_password=False)
    proc = None
    try:
        upgrade(url)
        seed(dsn, args.adapters, args.versions)
        home = Path(tempfile.mkdtemp(prefix="pemreg-policy-"))
        (home / "artifacts").mkdir()
        env = {
            **os.environ,
            "PEMREG_DATABASE_URL": url,
            "PEMREG_HOME": str(home),
            "PEMREG_ARTIFACT_STORE": (home / "artifacts").as_uri(),
        }
        reg = Registry(Settings(database_url=url, home=home))
        keys = {"reader": create_key(reg, "bench", "reader"), "admin": create_key(reg, "boss", "admin")}
        port = free_port()
        proc = start_server(env, port)
        kinds = query_kinds(args.adapters, args.versions)
        results: dict[str, dict[str, dict[str, float]]] = {"reader": {}, "admin": {}}
        for who, key in keys.items():
            with httpx.Client(
                base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=30
            ) as client:
                for name, fn in kinds.items():
                    results[who][name] = measure(client, name, fn, args.requests)
        print(f"load average {os.getloadavg()}  ({args.adapters} adapters x {args.versions} versions)")
        print(f"{'query':<20} {'reader p50':>10} {'p95':>7} {'admin p50':>10} {'p95':>7} {'ratio p95':>10}")
        worst = 0.0
        for name in kinds:
            r, a = results["reader"][name], results["admin"][name]
            ratio = r["p95"] / a["p95"] if a["p95"] else float("inf")
            worst = max(worst, ratio)
            row = f"{r['p50']:8.1f}ms {r['p95']:5.1f}ms {a['p50']:8.1f}ms {a['p95']:5.1f}ms"
            print(f"{name:<20} {row} {ratio:9.2f}x")
        verdict = "ok" if worst <= TARGET_RATIO else "MISSED"
        print(f"target: reader / admin p95 <= {TARGET_RATIO}x for every kind: {verdict} (worst {worst:.2f}x)")
        print(f"done at {time.strftime('%H:%M:%S')}, load average {os.getloadavg()}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        from registry.catalog.db import dispose_engines

        dispose_engines()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
