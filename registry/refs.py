"""Adapter names and version references: `namespace/name[@N | @alias | @sha256:prefix]`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidInput

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,127}$")
ALIAS_RE = re.compile(r"^[a-z][a-z0-9._-]{0,63}$")
SHA_PREFIX_RE = re.compile(r"^[0-9a-f]{6,64}$")
LATEST = "latest"


@dataclass(frozen=True)
class Ref:
    namespace: str
    name: str
    version: int | None = None
    alias: str | None = None
    sha256_prefix: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def selector(self) -> str:
        if self.version is not None:
            return str(self.version)
        if self.sha256_prefix is not None:
            return f"sha256:{self.sha256_prefix}"
        return self.alias or LATEST

    def __str__(self) -> str:
        return f"{self.full_name}@{self.selector}"


def validate_name(full_name: str, field: str = "name") -> tuple[str, str]:
    if not NAME_RE.match(full_name):
        raise InvalidInput(
            f"{field}: {full_name!r} is not a valid adapter name (namespace/name, lowercase letters, "
            "digits, '.', '_', '-'; e.g. acme/math-lora)",
            field=field,
        )
    namespace, name = full_name.split("/", 1)
    return namespace, name


def validate_alias(alias: str, field: str = "alias") -> str:
    if alias == LATEST:
        raise InvalidInput(
            f"{field}: 'latest' is implicit (the highest version) and cannot be set", field=field
        )
    if not ALIAS_RE.match(alias) or alias.isdigit():
        raise InvalidInput(
            f"{field}: {alias!r} is not a valid alias (lowercase, starts with a letter, e.g. 'prod')",
            field=field,
        )
    return alias


def parse_selector(selector: str, field: str = "version") -> dict[str, object]:
    """A version selector as used after '@' or in URLs: number, alias, 'latest' or 'sha256:prefix'."""
    if selector.isdigit():
        version = int(selector)
        if version < 1:
            raise InvalidInput(f"{field}: versions start at 1, got {selector}", field=field)
        return {"version": version}
    if selector.startswith("sha256:"):
        prefix = selector.removeprefix("sha256:").lower()
        if not SHA_PREFIX_RE.match(prefix):
            raise InvalidInput(f"{field}: {selector!r} needs 6-64 hex digits after 'sha256:'", field=field)
        return {"sha256_prefix": prefix}
    if selector == LATEST:
        return {}
    if not ALIAS_RE.match(selector):
        raise InvalidInput(
            f"{field}: {selector!r} is not a version number, alias or sha256:prefix", field=field
        )
    return {"alias": selector}


def parse_ref(text: str, field: str = "ref") -> Ref:
    full_name, _, selector = text.strip().partition("@")
    namespace, name = validate_name(full_name, field)
    return Ref(namespace, name, **parse_selector(selector, field) if selector else {})  # type: ignore[arg-type]
