"""Which task failures are worth a retry: the store or the database being briefly unavailable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

from prefect.tasks import exponential_backoff
from sqlalchemy.exc import InterfaceError, OperationalError

from registry.errors import Conflict, IntegrityError, StoreError

RETRIES = 3
RETRY_DELAYS = exponential_backoff(backoff_factor=1)  # 1, 2, 4 s


def is_transient(_task: Any, _task_run: Any, state: Any) -> bool:
    try:
        state.result()
    except (IntegrityError, Conflict):  # wrong bytes or an immutable clash won't heal by waiting
        return False
    except (StoreError, OperationalError, InterfaceError):
        return True
    except BaseException:  # noqa: BLE001 - every other failure is final
        return False
    return False


class RetryOptions(TypedDict):
    """`@task` keyword arguments, typed so that `**RETRYING` matches Prefect's `task` overloads."""

    retries: int
    retry_delay_seconds: Callable[[int], list[float]]
    retry_condition_fn: Callable[[Any, Any, Any], bool]


RETRYING: RetryOptions = {
    "retries": RETRIES,
    "retry_delay_seconds": RETRY_DELAYS,
    "retry_condition_fn": is_transient,
}
