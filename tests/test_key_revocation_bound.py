"""A server remembers an accepted API key for at most KEY_CACHE_SECONDS (1 s): a key revoked elsewhere
(another process, here this test's own Registry on the server's database) is refused within that
bound, by a real `pemreg serve`; the process that revokes a key refuses it at once."""

from __future__ import annotations

import inspect
import time

import httpx
import pytest

from api.deps import require
from registry.errors import Unauthenticated
from registry.service import Registry
from registry.service.admin.keys import (
    KEY_CACHE_SECONDS,
    authenticate,
    create_key,
    remembered,
    revoke_key,
)
from tests.live_server import Server, live_server  # noqa: F401


def test_the_bound_is_at_most_one_second() -> None:
    assert KEY_CACHE_SECONDS <= 1.0


def test_a_key_revoked_elsewhere_is_refused_within_the_bound(live_server: Server) -> None:  # noqa: F811
    secret = create_key(live_server.reg, "bound-ci", "reader")
    with httpx.Client(base_url=live_server.url, headers={"Authorization": f"Bearer {secret}"}) as http:
        for _ in range(3):  # accepted, and remembered by whichever worker answered
            assert http.get("/v1/adapters", params={"limit": 1}).status_code == 200
        revoke_key(live_server.reg, "bound-ci")  # committed when this returns
        revoked = time.monotonic()
        time.sleep(max(0.0, KEY_CACHE_SECONDS - (time.monotonic() - revoked)))
        answers = [http.get("/v1/adapters", params={"limit": 1}).status_code for _ in range(5)]
    assert answers == [401] * 5


def test_the_revoking_process_refuses_the_key_at_once(reg: Registry) -> None:
    secret = create_key(reg, "at-once", "writer")
    assert authenticate(reg, secret).principal == "key:at-once"  # now remembered
    revoke_key(reg, "at-once")
    with pytest.raises(Unauthenticated):
        authenticate(reg, secret)


def test_remembered_is_what_authenticate_accepted_within_the_bound(reg: Registry) -> None:
    """What the server's auth dependency checks on its event loop, with no catalog round trip: only a
    key the catalog accepted less than KEY_CACHE_SECONDS ago, and never one this process revoked."""
    secret = create_key(reg, "on-the-loop", "reader")
    assert remembered(reg, secret) is None  # never accepted yet: the dependency asks the catalog
    accepted = authenticate(reg, secret)
    assert remembered(reg, secret) == accepted
    assert remembered(reg, secret + "x") is None
    time.sleep(KEY_CACHE_SECONDS)
    assert remembered(reg, secret) is None  # past the bound: asked again
    authenticate(reg, secret)
    revoke_key(reg, "on-the-loop")
    assert remembered(reg, secret) is None


def test_the_auth_dependency_runs_on_the_event_loop() -> None:
    # A sync dependency would cost every request a thread hop of its own (docs/scale.md).
    assert inspect.iscoroutinefunction(require("reader"))
