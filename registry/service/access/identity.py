"""The acting principal of a request, a run or a CLI call: who, which groups, which global role.

No SQLAlchemy here: `Registry` carries one, and `registry.client` users never need the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

GLOBAL_ROLES = ("reader", "writer", "admin")
MAX_PRINCIPAL = 128  # the catalog's actor / created_by / principal columns


@dataclass(frozen=True)
class Access:
    """`principal` is `key:<name>` (an API key), `user:<sub>` (an SSO user), `anonymous` (the web
    page's public read) or a bare name: the operator on the server's own machine (the CLI with the
    catalog's credentials, the worker), who is an admin since the database is theirs anyway."""

    principal: str
    role: str  # the global role: reader | writer | admin
    groups: tuple[str, ...] = ()

    @classmethod
    def operator(cls, name: str) -> Access:
        return cls(name, "admin")

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def subjects(self) -> tuple[str, ...]:
        """What a grant may name to reach this principal: itself and each of its groups."""
        return (self.principal, *(f"group:{g}" for g in self.groups))
