"""The device slot: Prefect's global concurrency limit `gpu` around compute, and a record of each hold.

Compose and evaluate steps take one slot of the limit named `gpu` (`prefect gcl create gpu --limit 1`)
when the settings say so (`PEMREG_GPU_LIMIT`: `auto` on CUDA, `always`, `off`); without such a limit
they run unguarded. The slot is a Prefect lease of `LEASE_SECONDS`, renewed while held, so the slot of
a worker that died comes back within about a minute (plus Prefect's lease reaper interval). Each hold
is recorded for the run (`timings["device"]`), so overlaps can be checked afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LIMIT_NAME = "gpu"
LEASE_SECONDS = 60.0  # the shortest lease Prefect grants


@dataclass
class _Holds:
    mode: str
    holds: list[dict[str, Any]] = field(default_factory=list)


_current: ContextVar[_Holds | None] = ContextVar("pemreg_device_holds", default=None)


@contextmanager
def recording(mode: str) -> Iterator[list[dict[str, Any]]]:
    """For one flow run: the guard's mode, and the list its holds are appended to (task threads the
    flow submits share it: they run in a copy of this context)."""
    token = _current.set(_Holds(mode))
    try:
        yield _current.get().holds  # type: ignore[union-attr]
    finally:
        _current.reset(token)


def _guarded(mode: str) -> bool:
    if mode == "always":
        return True
    if mode == "off":
        return False
    from registry.compose.device import compute_device

    return compute_device().type == "cuda"


def _now() -> str:
    return datetime.now(UTC).isoformat()


@contextmanager
def device_slot(step: str) -> Iterator[None]:
    state = _current.get()  # None outside a compose flow run: guarded as `auto`, not recorded
    if not _guarded(state.mode if state else "auto"):
        yield
        return
    from prefect.concurrency.sync import concurrency

    asked = time.monotonic()
    with concurrency(LIMIT_NAME, occupy=1, strict=False, lease_duration=LEASE_SECONDS):
        hold = {"step": step, "acquired": _now(), "waited_s": round(time.monotonic() - asked, 3)}
        try:
            yield
        finally:
            hold["released"] = _now()
            if state is not None:
                state.holds.append(hold)
