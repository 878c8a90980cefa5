"""A stack of real processes on loopback: a `prefect server` on PostgreSQL, `pemreg serve` and N
`pemreg worker` processes, over a PostgreSQL catalog and SeaweedFS S3. Used by
tests/test_scale_out.py and benchmarks/scale_out.py.

Every wait is bounded; `ProcessStack.close()` stops what it started (workers before the Prefect server)
and drops its two databases.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from registry import service
from registry.catalog.migrate import upgrade
from registry.service import Registry
from registry.service.admin.keys import create_key
from tests.factories import make_lora, save_tiny_base
from tests.live_server import clean_env, free_port
from tests.pg_service import create_database, drop_database
from tests.s3_service import S3Service

STARTUP_SECONDS = 120.0
CLOSE_GRACE_SECONDS = 3.0
DATASET = [{"text": f"the quick brown fox jumps over the lazy dog {i}"} for i in range(8)]


def _asyncpg(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql+asyncpg://", 1)


def _wait(what: str, ready: object, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-3000:]}")
        try:
            if ready():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s: {log.read_text()[-3000:]}")


@dataclass
class ProcessStack:
    root: Path
    reg: Registry
    env: dict[str, str]  # what every pemreg process gets (catalog, store, Prefect API, run timings)
    prefect_url: str
    api_url: str  # pemreg serve
    writer_key: str
    dataset_uri: str  # a {"text"} jsonl under PEMREG_DATASET_ROOTS, for evaluations
    databases: list[str]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def spawn(self, name: str, args: list[str], **extra: str) -> subprocess.Popen[bytes]:
        with self.log(name).open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", *args],
                env={**self.env, **extra},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs[name] = proc
        return proc

    def start_worker(self, name: str, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        return self.spawn(name, ["api.cli.main", "worker", *args], **extra)

    def wait_workers_serving(self, names: list[str], timeout: float = STARTUP_SECONDS) -> None:
        """Each worker has registered the deployments and polls for runs (its log says so)."""
        for name in names:
            _wait(
                name,
                lambda name=name: "serving" in self.log(name).read_text(),
                self.procs[name],
                self.log(name),
                timeout,
            )

    def kill(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def stop(self, name: str, timeout: float = 15.0) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # a worker may sit out SIGTERM; it holds nothing we need
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def close(self) -> None:
        """SIGTERM every pemreg process at once, SIGKILL what is left after a short grace (a worker
        sits out SIGTERM while a run finishes; nothing it holds is needed), then the Prefect server.
        One at a time with 15 s each, this was 20-45 s of every stack test's teardown."""
        ours = [p for n, p in self.procs.items() if n != "prefect" and p.poll() is None]
        for proc in ours:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + CLOSE_GRACE_SECONDS
        for proc in ours:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
        if "prefect" in self.procs:
            self.stop("prefect")
        for url in self.databases:
            drop_database(url)


def open_stack(root: Path, s3: S3Service, *, gpu_limit: int | None = 1, **env_extra: str) -> ProcessStack:
    """Catalog and Prefect databases, the Prefect server, the `gpu` global concurrency limit, a base and
    two LoRAs registered, `pemreg serve`. Workers are started by the caller."""
    root.mkdir(parents=True, exist_ok=True)
    catalog_db = create_database("pemreg_stack")
    prefect_db = create_database("prefect_stack")
    upgrade(catalog_db)
    client = s3.client()
    try:
        client.head_bucket(Bucket=s3.bucket)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=s3.bucket)
    store_url = f"s3://{s3.bucket}/stack-{uuid.uuid4().hex[:8]}"
    settings = s3.settings(
        home=root / "home", database_url=catalog_db, store_url=store_url, principal="stack"
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    data_root = root / "data"
    data_root.mkdir(exist_ok=True)
    dataset = data_root / "ppl.jsonl"
    dataset.write_text("".join(f'{{"text": "{row["text"]}"}}\n' for row in DATASET))
    prefect_port, api_port = free_port(), free_port()
    prefect_url = f"http://127.0.0.1:{prefect_port}/api"
    env = clean_env(
        **s3.settings_env(store_url),
        PEMREG_DATABASE_URL=catalog_db,
        PEMREG_HOME=str(root / "home"),
        PEMREG_DATASET_ROOTS=str(data_root),
        PEMREG_GPU_LIMIT="always",  # CPU here: the `gpu` limit still guards compose and evaluate
        PREFECT_API_URL=prefect_url,
        PREFECT_HOME=str(root / "prefect-client"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        HF_HUB_OFFLINE="1",
        **env_extra,
    )
    stack = ProcessStack(
        root=root,
        reg=reg,
        env=env,
        prefect_url=prefect_url,
        api_url=f"http://127.0.0.1:{api_port}",
        writer_key=create_key(reg, "stack-writer", "writer"),
        dataset_uri=dataset.as_uri(),
        databases=[catalog_db, prefect_db],
    )
    try:
        server_env = {k: v for k, v in env.items() if k != "PREFECT_API_URL"}  # the server is no client
        server_env.update(
            PREFECT_HOME=str(root / "prefect-server"),
            PREFECT_API_DATABASE_CONNECTION_URL=_asyncpg(prefect_db),
            PREFECT_UI_ENABLED="false",
        )
        with stack.log("prefect").open("wb") as out:
            stack.procs["prefect"] = subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
                + ["--port", str(prefect_port)],
                env=server_env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _wait(
            "prefect server",
            lambda: httpx.get(f"{prefect_url}/health", timeout=2).status_code == 200,
            stack.procs["prefect"],
            stack.log("prefect"),
            STARTUP_SECONDS,
        )
        if gpu_limit is not None:
            made = httpx.post(
                f"{prefect_url}/v2/concurrency_limits/", json={"name": "gpu", "limit": gpu_limit}, timeout=10
            )
            made.raise_for_status()
        service.add_base_model(reg, "tiny-llama", source=str(save_tiny_base(root / "base")))
        service.register_adapter(reg, make_lora(root / "a", seed=1), "stack/a")
        service.register_adapter(reg, make_lora(root / "b", seed=2), "stack/b")
        stack.spawn("serve", ["api.cli.main", "serve", "--port", str(api_port), "--log-level", "warning"])
        _wait(
            "pemreg serve",
            lambda: httpx.get(f"{stack.api_url}/readyz", timeout=2).status_code == 200,
            stack.procs["serve"],
            stack.log("serve"),
            STARTUP_SECONDS,
        )
    except BaseException:
        stack.close()
        raise
    return stack


def spec(i: int, dataset_uri: str, retries: int = 1) -> dict[str, object]:
    """The i-th distinct composition (its own output name and weights, so its own cache key), evaluated
    by perplexity so that each run holds the `gpu` slot for a while."""
    w = round(0.2 + 0.6 * (i % 97) / 97, 4)
    return {
        "name": f"stack/sum-{i:03d}",
        "method": "linear",
        "expression": f"{w} * stack/a + {round(1 - w, 4)} * stack/b",
        "evaluate": [{"name": "ppl", "metric": "perplexity", "dataset": dataset_uri}],
        "retries": retries,
    }
