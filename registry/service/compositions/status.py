"""The status machine of a composition run: its states and the only transitions between them."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"  # a gate refused the result: nothing registered

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.REJECTED})
ACTIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING})

# from -> allowed next states. RUNNING -> PENDING is a retry after a lost worker (attempt + 1);
# PENDING -> SUCCEEDED is a cache hit answered before any work. Terminal states are final.
TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.PENDING: frozenset({RunStatus.RUNNING, RunStatus.SUCCEEDED, RunStatus.FAILED}),
    RunStatus.RUNNING: frozenset(
        {RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.REJECTED, RunStatus.PENDING}
    ),
    RunStatus.SUCCEEDED: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.REJECTED: frozenset(),
}


class IllegalTransition(RuntimeError):
    """A programming error (or a run already ended by reconcile): the row is left as it was."""


def check_transition(current: str, new: str) -> RunStatus:
    src, dst = RunStatus(current), RunStatus(new)
    if dst not in TRANSITIONS[src]:
        raise IllegalTransition(f"a {src} run cannot become {dst}")
    return dst
