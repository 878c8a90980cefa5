"""Which registry a flow run works on.

Deployment runs build it from PEMREG_* (the worker's environment). In-process runs started by a shell
that already holds a Registry (the REST API, tests) pass theirs through a context variable, never as a
flow parameter: parameters are shown in the Prefect UI and would expose store credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from registry.service import Registry
from registry.settings import Settings

_current: ContextVar[Registry | None] = ContextVar("pemreg_registry", default=None)


def current_registry() -> Registry:
    return _current.get() or Registry(Settings())


@contextmanager
def using(reg: Registry) -> Iterator[None]:
    token = _current.set(reg)
    try:
        yield
    finally:
        _current.reset(token)
