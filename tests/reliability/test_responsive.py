"""One request must not stall the server: a real `pemreg serve` on PostgreSQL + SeaweedFS answers
`/healthz` within 1 s while large and pathological bodies are refused, and none of them is a 5xx.

The campaign measured: a 10 MB YAML description stalled `/healthz` 10 s, a 10 MB list of inputs
105 s; a 10 MB JSON spec was accepted although the docs limit JSON to 64 KiB; nested lists and
parentheses, 5,000 unary minus and `1e999 * x` answered 500; 5,000 multipart `tags` fields of 60 KB
grew the server by 309 MB before the 422. (The 25 s `1e10000000 * ref` expression is the parser's
number bound, tested with the parser.)"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.live_server import Server, run_server, server_pid
from tests.s3_service import S3Service

pytestmark = [pytest.mark.postgres, pytest.mark.s3]
MB = 1024 * 1024


@pytest.fixture(scope="module")
def server(pg_url: str, s3_service: S3Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from run_server(pg_url, s3_service, tmp_path_factory.mktemp("responsive"))


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


class HealthProbe:
    """Polls /healthz every 50 ms on its own connection; keeps the worst latency."""

    def __init__(self, url: str) -> None:
        self.url, self.worst, self.failures = url, 0.0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    ok = client.get(f"{self.url}/healthz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.worst = max(self.worst, time.monotonic() - started)
                self.failures += not ok
                self.stop.wait(0.05)

    def __enter__(self) -> HealthProbe:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _chunks(data: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _cases() -> list[tuple[str, str, dict[str, Any]]]:
    """(label, path, httpx request kwargs). JSON bodies are sent as raw bytes (no client-side parse)."""
    big = "x" * (10 * MB)
    inputs = ",".join('{"adapter": "t/a", "weight": 0.1}' for _ in range(300_000))  # ~10 MB
    yaml_inputs = "name: t/big\ninputs:\n" + "  - {adapter: t/a, weight: 0.1}\n" * 330_000
    json_h = {"content-type": "application/json"}
    yaml_h = {"content-type": "application/yaml"}
    spec = "/v1/compositions"
    return [
        (
            "json 10 MB description",
            spec,
            {"content": f'{{"name":"t/x","expression":"t/a","description":"{big}"}}', "headers": json_h},
        ),
        (
            "yaml 10 MB description",
            spec,
            {"content": f"name: t/x\nexpression: t/a\ndescription: {big}\n", "headers": yaml_h},
        ),
        ("json 10 MB inputs", spec, {"content": f'{{"name":"t/x","inputs":[{inputs}]}}', "headers": json_h}),
        ("yaml 10 MB inputs", spec, {"content": yaml_inputs, "headers": yaml_h}),
        (
            "chunked 10 MB json",
            spec,
            {"content": _chunks(f'{{"description":"{big}"}}'.encode()), "headers": json_h},
        ),
        (
            "validate 10 MB",
            "/v1/compositions:validate",
            {"content": f'{{"description":"{big}"}}', "headers": json_h},
        ),
        (
            "nested json lists",
            spec,
            {
                "content": f'{{"name":"t/x","expression":"t/a","description":{_nested(20_000)}}}',
                "headers": json_h,
            },
        ),
        (
            "nested yaml lists",
            spec,
            {"content": f"name: t/x\nexpression: t/a\ndescription: {_nested(20_000)}\n", "headers": yaml_h},
        ),
        ("400 parentheses", spec, {"json": {"name": "t/x", "expression": "(" * 400 + "t/a" + ")" * 400}}),
        ("5000 unary minus", spec, {"json": {"name": "t/x", "expression": "-" * 5000 + "t/a"}}),
        ("1e999", spec, {"json": {"name": "t/x", "expression": "1e999 * t/a"}}),
        ("1e308 twice", spec, {"json": {"name": "t/x", "expression": "1e308 * t/a + 1e308 * t/a"}}),
        (
            "huge int in yaml",
            spec,
            {"content": "name: t/x\nexpression: t/a\nseed: " + "9" * 5000 + "\n", "headers": yaml_h},
        ),
        (
            "10 MB base model json",
            "/v1/base-models",
            {"content": f'{{"name":"b","source":"{big}"}}', "headers": json_h},
        ),
        ("10 MB text/plain", "/v1/base-models", {"content": big, "headers": {"content-type": "text/plain"}}),
        (
            "10 MB sign-in form",
            "/signin",
            {"content": "key=" + big, "headers": {"content-type": "application/x-www-form-urlencoded"}},
        ),
    ]


def test_healthz_stays_fast_while_bad_bodies_are_refused(server: Server) -> None:
    h = {"Authorization": f"Bearer {server.keys['writer']}"}
    statuses: dict[str, int] = {}
    cases = _cases()  # built first: building 10 MB bodies here must not starve the probe's own thread
    with (
        HealthProbe(server.url) as probe,
        httpx.Client(base_url=server.url, headers=h, timeout=120) as client,
    ):
        for label, path, kwargs in cases:
            started = time.monotonic()
            r = client.post(path, **{**kwargs, "headers": {**h, **kwargs.get("headers", {})}})
            statuses[label] = r.status_code
            assert 400 <= r.status_code < 500, (label, r.status_code, r.text[:300])
            assert "\n" not in r.json().get("detail", ""), (label, r.text[:300])
            assert time.monotonic() - started < 10, label
    five_xx = sum(s >= 500 for s in statuses.values())
    print(
        f"bad bodies: {len(statuses)} requests, 5xx: {five_xx}, worst /healthz {probe.worst * 1000:.0f} ms, "
        f"/healthz failures: {probe.failures}, statuses: {sorted(set(statuses.values()))} "
        f"(load {os.getloadavg()[0]:.1f})"
    )
    assert five_xx == 0 and probe.failures == 0
    assert probe.worst < 1.0, probe.worst
    for label in ("json 10 MB description", "yaml 10 MB inputs", "chunked 10 MB json", "10 MB text/plain"):
        assert statuses[label] == 413, (label, statuses[label])


def _tags_form(count: int, size: int) -> Callable[[], Iterator[bytes]]:
    boundary = "pemregboundary"

    def body() -> Iterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nt/tags\r\n'.encode()
        value = b"k=" + b"v" * (size - 2)
        for _ in range(count):
            yield (
                f'--{boundary}\r\nContent-Disposition: form-data; name="tags"\r\n\r\n'.encode()
                + value
                + b"\r\n"
            )
        yield f"--{boundary}--\r\n".encode()

    return body


def test_thousands_of_form_fields_are_refused_early_with_bounded_memory(server: Server) -> None:
    pid = server_pid(server.url)
    before = _rss_kib(pid)
    h = {
        "Authorization": f"Bearer {server.keys['writer']}",
        "content-type": "multipart/form-data; boundary=pemregboundary",
    }
    with HealthProbe(server.url) as probe:
        try:
            r = httpx.post(
                f"{server.url}/v1/adapters", content=_tags_form(5000, 60_000)(), headers=h, timeout=120
            )
            status = r.status_code
        except httpx.HTTPError:  # the server may close the connection once it has refused the body
            status = 413
    grown_mib = (_rss_kib(pid) - before) / 1024
    print(
        f"5,000 x 60 KB tags: status {status}, server RSS +{grown_mib:.0f} MiB, "
        f"worst /healthz {probe.worst * 1000:.0f} ms (load {os.getloadavg()[0]:.1f})"
    )
    assert status in (413, 422)
    assert grown_mib < 40, grown_mib
    assert probe.worst < 1.0
