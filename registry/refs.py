"""Adapter names and version references: `namespace/name[@N | @alias | @sha256:prefix]`.

One home for the grammar: the spec language (registry/spec) and the catalog (registry/service) share it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidInput

NAMESPACE_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
NAME_PATTERN = rf"{NAMESPACE_PATTERN}/[a-z0-9][a-z0-9._-]{{0,127}}"
ALIAS_PATTERN = r"[a-z][a-z0-9._-]{0,63}"
SHA_PREFIX_PATTERN = r"[0-9a-f]{6,64}"
SELECTOR_PATTERN = r"sha256:[0-9a-f]{1,64}|[0-9]+|[a-z0-9][a-z0-9._-]{0,63}"
REF_RE = re.compile(rf"(?P<name>{NAME_PATTERN})(?:@(?P<selector>{SELECTOR_PATTERN}))?")
# For JSON Schema / OpenAPI (ECMA `$` is the end of input). Python code below uses re.fullmatch:
# Python's `$` also matches before a trailing newline, which once let `rel/abc\n` in as a second name.
ADAPTER_NAME_PATTERN = rf"^{NAME_PATTERN}$"
ALIAS_SCHEMA_PATTERN = rf"^{ALIAS_PATTERN}$"
NAME_RE = re.compile(NAME_PATTERN)
NAMESPACE_RE = re.compile(NAMESPACE_PATTERN)
ALIAS_RE = re.compile(ALIAS_PATTERN)
SHA_PREFIX_RE = re.compile(SHA_PREFIX_PATTERN)
DIGITS_RE = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts '²' and '٣'
MAX_VERSION = 2**31 - 1  # the catalog's integer column
LATEST = "latest"


@dataclass(frozen=True, order=True)
class Ref:
    """Exactly one of version / alias / sha256_prefix, or none (= latest, implicit)."""

    namespace: str
    name: str
    version: int | None = None
    alias: str | None = None
    sha256_prefix: str | None = None

    @property
    def full_name(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def selector(self) -> str | None:
        if self.version is not None:
            return str(self.version)
        if self.alias is not None:
            return self.alias
        if self.sha256_prefix is not None:
            return f"sha256:{self.sha256_prefix}"
        return None

    def __str__(self) -> str:
        return self.full_name + (f"@{self.selector}" if self.selector else "")

    @classmethod
    def parse(cls, text: str) -> Ref:
        match = REF_RE.fullmatch(text.strip(" "))
        if not match:
            raise InvalidInput(
                f"{text!r} is not an adapter reference (namespace/name[@selector])", field="ref"
            )
        return cls.build(match.group("name"), match.group("selector"))

    @classmethod
    def build(cls, full_name: str, selector: str | int | None) -> Ref:
        namespace, name = full_name.split("/", 1)
        if selector is None or selector == "latest":  # latest is implicit: one spelling, one ref
            return cls(namespace, name)
        if isinstance(selector, int) or DIGITS_RE.fullmatch(selector):
            version = _version_number(str(selector), "ref")
            return cls(namespace, name, version=version)
        if selector.startswith("sha256:"):
            return cls(namespace, name, sha256_prefix=selector.removeprefix("sha256:"))
        return cls(namespace, name, alias=selector)


def _version_number(text: str, field: str) -> int:
    version = int(text) if len(text) <= 12 else MAX_VERSION + 1
    if not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"{field}: versions run from 1 to {MAX_VERSION}, got {text[:20]}", field=field)
    return version


def validate_name(full_name: str, field: str = "name") -> tuple[str, str]:
    if not isinstance(full_name, str) or not NAME_RE.fullmatch(full_name):
        raise InvalidInput(
            f"{field}: {full_name!r:.200} is not a valid adapter name (namespace/name, lowercase letters, "
            "digits, '.', '_', '-'; e.g. acme/math-lora)",
            field=field,
        )
    namespace, name = full_name.split("/", 1)
    return namespace, name


def validate_namespace(namespace: str, field: str = "namespace") -> str:
    if not isinstance(namespace, str) or not NAMESPACE_RE.fullmatch(namespace):
        raise InvalidInput(
            f"{field}: {namespace!r:.100} is not a valid namespace (lowercase letters, digits, '.', '_', "
            "'-', up to 64; e.g. acme)",
            field=field,
        )
    return namespace


def validate_alias(alias: str, field: str = "alias") -> str:
    if alias == LATEST:
        raise InvalidInput(
            f"{field}: 'latest' is implicit (the highest version) and cannot be set", field=field
        )
    if not ALIAS_RE.fullmatch(alias):
        raise InvalidInput(
            f"{field}: {alias!r:.100} is not a valid alias (lowercase, starts with a letter, e.g. 'prod')",
            field=field,
        )
    return alias


def parse_selector(selector: str, field: str = "version") -> dict[str, object]:
    """A version selector as used after '@' or in URLs: number, alias, 'latest' or 'sha256:prefix'."""
    if DIGITS_RE.fullmatch(selector):
        return {"version": _version_number(selector, field)}
    if selector.startswith("sha256:"):
        prefix = selector.removeprefix("sha256:").lower()
        if not SHA_PREFIX_RE.fullmatch(prefix):
            raise InvalidInput(
                f"{field}: {selector!r:.100} needs 6-64 hex digits after 'sha256:'", field=field
            )
        return {"sha256_prefix": prefix}
    if selector == LATEST:
        return {}
    if not ALIAS_RE.fullmatch(selector):
        raise InvalidInput(
            f"{field}: {selector!r:.100} is not a version number, alias or sha256:prefix", field=field
        )
    return {"alias": selector}


def parse_ref(text: str, field: str = "ref") -> Ref:
    full_name, _, selector = text.strip(" ").partition("@")
    namespace, name = validate_name(full_name, field)
    return Ref(namespace, name, **(parse_selector(selector, field) if selector else {}))  # type: ignore[arg-type]
