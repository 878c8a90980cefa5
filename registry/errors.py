"""Error types shared by every layer. Shells (CLI, REST) map them to exit codes and HTTP statuses."""


class RegistryError(Exception):
    """Base class: the message is shown to the user as one line."""


class InvalidInput(RegistryError):
    """Bad user input (a spec field, a name, a flag). Maps to HTTP 422 / exit code 1."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class AdapterFormatError(InvalidInput):
    """An adapter folder or file is malformed (missing config, bad header, NaN, shape mismatch...)."""


class IncompatibleAdapters(InvalidInput):
    """Inputs of a composition cannot be combined (different base, PEM type, shapes, ranks...)."""


class NotFound(RegistryError):
    """A named object does not exist. Maps to HTTP 404."""


class Conflict(RegistryError):
    """The request contradicts existing state (e.g. an immutable object would change). HTTP 409."""


class StoreError(RegistryError):
    """The artifact store failed or refused (unreachable, wrong credentials, integrity mismatch)."""


class IntegrityError(StoreError):
    """Downloaded bytes do not match the recorded sha256."""


class Busy(RegistryError):
    """At capacity for now (e.g. the composition queue is full); the same request later may pass.
    HTTP 503 with Retry-After."""


class PermissionDenied(RegistryError):
    """Authenticated but not allowed (HTTP 403)."""


class Unauthenticated(RegistryError):
    """Missing or invalid credentials (HTTP 401)."""


def describe_unexpected(exc: BaseException) -> str:
    """One line for a failure that is not a RegistryError (a shell's last resort): database trouble
    named as such, without the SQL and parameters drivers put on further lines."""
    import sqlite3

    if isinstance(exc, sqlite3.Error):  # the CLI's local reads run on sqlite3 itself (catalog.prepared)
        kind = "unavailable" if isinstance(exc, sqlite3.OperationalError) else "error"
        return f"catalog database {kind}: {_first_line(str(exc) or type(exc).__name__)}"
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    if isinstance(exc, PoolTimeout) or isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "catalog database unavailable (timed out); retry later"
    if isinstance(exc, DBAPIError):
        kind = "unavailable" if type(exc).__name__ in ("OperationalError", "InterfaceError") else "error"
        return f"catalog database {kind}: {_first_line(str(exc.orig) or type(exc.orig).__name__)}"
    if isinstance(exc, SQLAlchemyError):
        return f"catalog database error: {_first_line(str(exc))}"
    return f"{type(exc).__name__}: {_first_line(str(exc))}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
