"""The grammar of the registry, written once: namespaces, adapter names, aliases (and alias globs),
version selectors, digest prefixes, refs `namespace/name[@N | @alias | @sha256:prefix]` and tags.

The spec language (registry/spec), the catalog (registry/service), the REST schemas and path
parameters (api/) and the CLI all read their patterns and checks from here, so a value the spec
accepts is one the catalog accepts when the run acts on it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidInput

NAMESPACE_PATTERN = r"[a-z0-9][a-z0-9._-]{0,63}"
NAME_PART_PATTERN = r"[a-z0-9][a-z0-9._-]{0,127}"  # the `name` of `namespace/name`
NAME_PATTERN = rf"{NAMESPACE_PATTERN}/{NAME_PART_PATTERN}"
ALIAS_PATTERN = r"[a-z][a-z0-9._-]{0,63}"  # starts with a letter: `@12` is a version, never an alias
SHA_PREFIX_MIN, SHA_PREFIX_MAX = 6, 64  # shorter prefixes are ambiguous too soon to be a reference
SHA_PREFIX_PATTERN = rf"[0-9a-f]{{{SHA_PREFIX_MIN},{SHA_PREFIX_MAX}}}"
SHA256_PATTERN = rf"[0-9a-f]{{{SHA_PREFIX_MAX}}}"  # a whole digest (files, uploads, bases)
VERSION_PATTERN = r"[1-9][0-9]{0,8}"  # what the REST schema states; the check below allows to 2**31-1
SELECTOR_PATTERN = rf"{VERSION_PATTERN}|sha256:{SHA_PREFIX_PATTERN}|{ALIAS_PATTERN}"
# An alias glob (protected aliases, webhook filters): alias characters plus fnmatch's * ? [...].
ALIAS_GLOB_PATTERN = r"[a-z0-9._*?\[\]!-]{1,64}"
TAG_KEY_MAX, TAG_VALUE_MAX = 128, 512
TAG_PATTERN = (
    rf"[^=\s\x00-\x1f\x7f][^=\x00-\x1f\x7f]{{0,{TAG_KEY_MAX - 1}}}=[^\x00-\x1f\x7f]{{0,{TAG_VALUE_MAX}}}"
)
# A tag filter (`tag=k:v` in a query, `k=v` as the CLI writes it): split at the first `:` or `=`.
TAG_FILTER_PATTERN = r"[^:=\x00-\x1f\x7f]+[:=][^\x00-\x1f\x7f]*"
# A ref as a token of an expression: the selector is taken lexically here (any selector characters)
# and checked by parse_selector, so `@sha256:ab` gets the same message in an expression as in a URL.
REF_TOKEN_RE = re.compile(rf"(?P<name>{NAME_PATTERN})(?:@(?P<selector>[A-Za-z0-9._:-]*))?")


def schema_pattern(pattern: str, *, not_latest: bool = False) -> str:
    """For JSON Schema / OpenAPI (ECMA `$` is the end of input). Python code uses re.fullmatch:
    Python's `$` also matches before a trailing newline, which once let `rel/abc\n` in as a second name."""
    return rf"^{'(?!latest$)' if not_latest else ''}(?:{pattern})$"


ADAPTER_NAME_PATTERN = schema_pattern(NAME_PATTERN)
NAMESPACE_SCHEMA_PATTERN = schema_pattern(NAMESPACE_PATTERN)
NAME_PART_SCHEMA_PATTERN = schema_pattern(NAME_PART_PATTERN)
ALIAS_SCHEMA_PATTERN = schema_pattern(ALIAS_PATTERN, not_latest=True)
SELECTOR_SCHEMA_PATTERN = schema_pattern(SELECTOR_PATTERN)
NAMED_VERSION_SCHEMA_PATTERN = schema_pattern(SELECTOR_PATTERN, not_latest=True)
ALIAS_GLOB_SCHEMA_PATTERN = schema_pattern(ALIAS_GLOB_PATTERN)
TAG_SCHEMA_PATTERN = schema_pattern(TAG_PATTERN)
SHA256_SCHEMA_PATTERN = schema_pattern(SHA256_PATTERN)
# What a client may send for a digest (either case, `sha256:` optional): whole, or a prefix as in refs.
DIGEST_INPUT_SCHEMA_PATTERN = rf"^(sha256:)?[0-9a-fA-F]{{{SHA_PREFIX_MAX}}}$"
DIGEST_PREFIX_INPUT_SCHEMA_PATTERN = rf"^(sha256:)?[0-9a-fA-F]{{{SHA_PREFIX_MIN},{SHA_PREFIX_MAX}}}$"
TAG_FILTER_SCHEMA_PATTERN = schema_pattern(TAG_FILTER_PATTERN)
NAME_RE = re.compile(NAME_PATTERN)
NAMESPACE_RE = re.compile(NAMESPACE_PATTERN)
ALIAS_RE = re.compile(ALIAS_PATTERN)
ALIAS_GLOB_RE = re.compile(ALIAS_GLOB_PATTERN)
SHA_PREFIX_RE = re.compile(SHA_PREFIX_PATTERN)
SHA256_RE = re.compile(SHA256_PATTERN)
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
    def parse(cls, text: str, field: str = "ref") -> Ref:
        return parse_ref(text, field)

    @classmethod
    def build(cls, full_name: str, selector: str | int | None, field: str = "ref") -> Ref:
        namespace, name = validate_name(full_name, field)
        if selector is None:
            return cls(namespace, name)
        if isinstance(selector, int):
            selector = str(selector)
        return cls(namespace, name, **parse_selector(selector, field))  # type: ignore[arg-type]


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
                f"{field}: {selector!r:.100} needs {SHA_PREFIX_MIN}-{SHA_PREFIX_MAX} hex digits after "
                "'sha256:'",
                field=field,
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
    """`namespace/name[@selector]`, spaces around it allowed; the one parser of refs (Ref.parse, the
    expression tokenizer, spec fields, resolve_inputs and the CLI all come here)."""
    full_name, at, selector = text.strip(" ").partition("@")
    namespace, name = validate_name(full_name, field)
    return Ref(namespace, name, **(parse_selector(selector, field) if at else {}))  # type: ignore[arg-type]


def parse_tag_filters(items: list[str], field: str = "tag") -> dict[str, str]:
    """`tag=k:v` as docs/rest.md writes it; `k=v` (the CLI's form) works too. Splits at the first of them."""
    tags: dict[str, str] = {}
    for item in items:
        cut = min((i for i in (item.find(":"), item.find("=")) if i > 0), default=-1)
        if cut < 0 or any(ord(c) < 32 or ord(c) == 127 for c in item):
            raise InvalidInput(f"{field}: {item[:80]!r} is not key:value", field=field)
        tags[item[:cut].strip()] = item[cut + 1 :].strip()
    return tags
