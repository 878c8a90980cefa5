"""The acting principal of a request, a run or a CLI call: who, which groups, which global role.

No SQLAlchemy here: `Registry` carries one, and `registry.client` users never need the catalog.
"""

from __future__ import annotations

from dataclasses import dataclass

GLOBAL_ROLES = ("reader", "writer", "admin")
MAX_PRINCIPAL = 128  # the catalog's actor / created_by / principal columns

# What a principal is, read off its name (the one place that does).
KEY, USER, ANONYMOUS, LOCAL = "key", "user", "anonymous", "local"


@dataclass(frozen=True)
class Access:
    """`principal` is `key:<name>` (an API key), `user:<sub>` (an SSO user), `anonymous` (the web
    page's public read) or a bare name: the operator on the server's own machine (the CLI with the
    catalog's credentials, the worker), who is an admin since the database is theirs anyway.

    `key_id` is the row of the key a `key:` principal authenticated with (or stored a run with): the
    name is the principal (grants name it, and a new key reusing a revoked key's name holds them), the
    row is the credential (runs and web sessions tied to a revoked row stop, whatever key holds the
    name now)."""

    principal: str
    role: str  # the global role: reader | writer | admin
    groups: tuple[str, ...] = ()
    key_id: int | None = None

    @classmethod
    def operator(cls, name: str) -> Access:
        return cls(name, "admin")

    @property
    def kind(self) -> str:
        """`key`, `user`, `anonymous`, or `local` (the operator): what it may name as a source
        (registry/sources.py) and how its stored work is checked when it starts."""
        return kind_of(self.principal)

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def subjects(self) -> tuple[str, ...]:
        """What a grant may name to reach this principal: itself and each of its groups."""
        return (self.principal, *(f"group:{g}" for g in self.groups))


def kind_of(principal: str) -> str:
    if principal.startswith("key:"):
        return KEY
    if principal.startswith("user:"):
        return USER
    return ANONYMOUS if principal == ANONYMOUS else LOCAL
