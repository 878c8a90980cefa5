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


class PermissionDenied(RegistryError):
    """Authenticated but not allowed (HTTP 403)."""


class Unauthenticated(RegistryError):
    """Missing or invalid credentials (HTTP 401)."""
