"""The one cron rule: a `schedule` is valid when Prefect's own `CronSchedule` accepts it.

The worker turns every stored `schedule` into a Prefect cron deployment, and Prefect validates it with
its vendored croniter. Asking the same model here (rather than a croniter of our own, whose release
differs: croniter 7 accepts `0 0 1W * *`, Prefect 3.8.8 refuses it) means the spec can never accept a
schedule the worker will refuse.
"""

from __future__ import annotations

from pydantic import ValidationError

from registry.errors import InvalidInput

# Longer than any real schedule; croniter takes seconds over a 40 KB list of ranges.
MAX_CRON_CHARS = 256


def check_cron(text: str, field: str = "schedule") -> str:
    """`text` if Prefect schedules it, else InvalidInput naming `field` and Prefect's reason."""
    if len(text) > MAX_CRON_CHARS:
        raise InvalidInput(f"{field}: at most {MAX_CRON_CHARS} characters", field=field)
    # Imported here: prefect takes about a second to import, and only specs with a schedule need it.
    from prefect.client.schemas.schedules import CronSchedule

    try:
        CronSchedule(cron=text)
    except ValidationError as exc:
        reason = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise InvalidInput(
            f"{field}: not a cron schedule Prefect accepts: {reason:.200}", field=field
        ) from None
    return text
