#!/usr/bin/env bash
# Run the test suite against real services: ensure PostgreSQL is reachable, start SeaweedFS (S3 with an
# identities file), run pytest, stop what this script started. The tests create a fresh database per
# session themselves (tests/pg_service.py).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
work="$repo/.test-services"
mkdir -p "$work"
started_pg=""

pg_up() { pg_isready -q -h 127.0.0.1 -p "$1" 2>/dev/null; }

ensure_postgres() {
    if [[ -n "${PEMREG_TEST_PG_ADMIN_URL:-}" ]]; then return; fi
    if pg_up 5432; then return; fi
    if ls /etc/postgresql/*/main >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null; then
        echo "test.sh: starting the machine's PostgreSQL cluster"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | tail -1)" main start
        for _ in $(seq 30); do pg_up 5432 && return; sleep 1; done
    fi
    # No service cluster: a private throwaway cluster (installing the server package if needed).
    if ! ls -d /usr/lib/postgresql/*/bin >/dev/null 2>&1; then
        echo "test.sh: installing PostgreSQL from Debian's packages"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    local bin; bin="$(ls -d /usr/lib/postgresql/*/bin | tail -1)"
    local data="$work/pg" port=55432
    rm -rf "$data"; mkdir -p "$data"; chown postgres "$data" 2>/dev/null || true
    runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=trust >/dev/null
    runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$data/log" -w \
        -o "-p $port -c listen_addresses=127.0.0.1 -k $data" start >/dev/null
    started_pg="$bin/pg_ctl -D $data"
    export PEMREG_TEST_PG_ADMIN_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
}

# The web tests drive Debian's headless Chromium (Playwright launches /usr/bin/chromium; it never
# downloads a browser). Installed once, as PostgreSQL is; skipped when present or when not root.
ensure_chromium() {
    if [[ -x /usr/bin/chromium && -x /usr/bin/chromedriver ]]; then return; fi
    if [[ "$(id -u)" != 0 ]] || ! command -v apt-get >/dev/null; then
        echo "test.sh: no /usr/bin/chromium; the browser tests will be skipped" >&2; return
    fi
    echo "test.sh: installing chromium from Debian's packages"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
}

cleanup() {
    bash scripts/seaweedfs.sh stop "$work/s3" >/dev/null 2>&1 || true
    if [[ -n "$started_pg" ]]; then runuser -u postgres -- $started_pg -m fast stop >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

ensure_postgres
ensure_chromium
bash scripts/seaweedfs.sh stop "$work/s3" >/dev/null 2>&1 || true
rm -rf "$work/s3"
bash scripts/seaweedfs.sh start "$work/s3"
set -a; . "$work/s3/env"; set +a

export PREFECT_HOME="$work/prefect" PREFECT_SERVER_ANALYTICS_ENABLED=false
# One torch (OpenMP) thread per process, inherited by every command and server the tests start: the
# two workers already fill both cores, and a second thread on a busy core made small forwards and
# matrix products ~10x slower (tests/test_demo_real.py's recomputation: 90 s vs 8 s per row;
# tests/test_flow_compose.py 119 s -> 95 s). Code that measures its own thread count still sets it.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Two workers: the suite waits on subprocesses, servers and Prefect as much as it computes. One test
# file per worker at a time (module fixtures stay in one process), in tests/conftest.py's SCHEDULE order;
# PYTEST_WORKERS=0 runs serially.
"$repo/.venv/bin/python" -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder "$@"
