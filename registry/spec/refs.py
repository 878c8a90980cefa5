"""Adapter references: `namespace/name` with an optional `@N`, `@alias` or `@sha256:<prefix>`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from registry.errors import InvalidInput

NAME_RE = r"[a-z0-9][a-z0-9._-]{0,63}/[a-z0-9][a-z0-9._-]{0,127}"
SELECTOR_RE = r"sha256:[0-9a-f]{1,64}|[0-9]+|[a-z0-9][a-z0-9._-]{0,63}"
REF_RE = re.compile(rf"(?P<name>{NAME_RE})(?:@(?P<selector>{SELECTOR_RE}))?")
ADAPTER_NAME_PATTERN = rf"^{NAME_RE}$"


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
        match = REF_RE.fullmatch(text.strip())
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
        if isinstance(selector, int) or selector.isdigit():
            version = int(selector)
            if version < 1:
                raise InvalidInput(f"{full_name}@{selector}: versions start at 1", field="ref")
            return cls(namespace, name, version=version)
        if selector.startswith("sha256:"):
            return cls(namespace, name, sha256_prefix=selector.removeprefix("sha256:"))
        return cls(namespace, name, alias=selector)
