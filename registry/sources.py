"""Who may name which source: one policy for adapter folders, base models, datasets and calibration sets.

A source is read by the server (or a worker) with its own disk and credentials, so the question is
whose request it is. The local user (the CLI on the server's machine, and runs they stored) may read
any local path or bucket their credentials reach. Anyone else (a REST caller, remote mode, and every
run such a caller stored: scheduled, recomposed or retried) may name only
- the registry's own artifact store,
- the roots the operator lists in `PEMREG_SOURCE_ROOTS` (local folders and `s3://bucket/prefix`
  entries; the older `PEMREG_DATASET_ROOTS` is folded in),
- and, for base models only, a hub id when `PEMREG_ALLOW_HUB_SOURCES=true`.
Everything else is refused with one message that does not depend on whether the thing exists, before
anything is read or any host is contacted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from .errors import InvalidInput
from .paths import user_path

LOCAL = "local"  # the principal kind of the local user (CLI on this machine)
# `org/name` or `name`, as Hugging Face spells repository ids; never a path or a URI.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")


def is_hub_id(text: str) -> bool:
    return bool(_HUB_ID.fullmatch(text)) and ".." not in text and not text.endswith(".")


@dataclass(frozen=True)
class SourceAccess:
    """`local_user`: any local path or bucket. Otherwise only under `roots` (absolute real directory
    paths ending in `/` and `s3://bucket/prefix/` strings), and hub ids when `allow_hub`."""

    local_user: bool
    roots: tuple[str, ...] = ()
    allow_hub: bool = False

    @classmethod
    def for_local_user(cls) -> SourceAccess:
        return cls(local_user=True, allow_hub=True)

    @classmethod
    def for_remote_caller(cls, settings: Any) -> SourceAccess:
        """The artifact store, PEMREG_SOURCE_ROOTS and PEMREG_DATASET_ROOTS (comma-separated: URIs hold
        colons); hub ids per PEMREG_ALLOW_HUB_SOURCES."""
        listed = f"{settings.source_roots},{settings.dataset_roots}".split(",")
        given = [settings.resolved_artifact_store, *(r.strip() for r in listed if r.strip())]
        return cls(
            local_user=False,
            roots=tuple(dict.fromkeys(_root(r) for r in given)),
            allow_hub=bool(settings.allow_hub_sources),
        )

    @classmethod
    def for_principal(cls, settings: Any, kind: str) -> SourceAccess:
        """The access of a principal of this kind: `local` reads as the local user, any other kind
        (an API key, a signed-in user) as a remote caller."""
        return cls.for_local_user() if kind == LOCAL else cls.for_remote_caller(settings)

    def check(self, uri: str, field: str) -> None:
        """Refuse a location (file, folder, s3:// URI) this caller may not name."""
        if self.local_user:
            return
        where = _location(uri)
        if where is None or not any(_under(where, root) for root in self.roots):
            raise refusal(uri, field)

    def check_each(self, uris: Iterable[str], field: str) -> None:
        """Every `uris[i]`, refused as `field[i]` (e.g. `evaluate[1].dataset`)."""
        for i, uri in enumerate(uris):
            self.check(uri, f"{field}[{i}]")

    def check_model_source(self, source: str, field: str = "source") -> None:
        """A base-model source: a location as in `check`, or a hub id (only with `allow_hub`)."""
        if self.local_user:
            return
        if is_hub_id(source.strip()) and not source.strip().startswith(("s3:", "file:")):
            if not self.allow_hub:
                raise refusal(source, field, hub=True)
            return
        self.check(source, field)


def local_folder(source: str) -> Path | None:
    """The local path a `file://` URI or a plain path names (None for other schemes)."""
    parsed = urlparse(source)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme:
        return None
    return user_path(source)


def refusal(uri: str, field: str, *, hub: bool = False) -> InvalidInput:
    """The one refusal text: the same whether or not the source exists, and nothing about what it holds."""
    hint = " (a hub id needs PEMREG_ALLOW_HUB_SOURCES=true)" if hub else ""
    return InvalidInput(
        f"{field}: {uri[:200]!r} is not in the registry's store or under an allowed source root "
        f"(PEMREG_SOURCE_ROOTS){hint}",
        field=field,
    )


def _root(text: str) -> str:
    if text.startswith("s3://"):
        return text.rstrip("/") + "/"
    path = Path(unquote(urlparse(text).path)) if text.startswith("file://") else Path(text)
    return str(path.resolve()).rstrip("/") + "/"


def _location(uri: str) -> str | None:
    """A comparable location (`s3://bucket/key` or a real absolute path), or None for what a remote
    caller may never name: `~` paths, relative paths, `..` in a key, other hosts and schemes."""
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        return None
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        key = PurePosixPath(unquote(parsed.path))
        if not parsed.netloc or ".." in key.parts:
            return None
        return f"s3://{parsed.netloc}/{str(key).lstrip('/')}"
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            return None
        text = unquote(parsed.path)
    elif parsed.scheme:
        return None
    else:
        text = uri
    if not text.startswith("/"):
        return None  # relative to the server's working directory, or ~user: never a caller's to name
    try:
        return str(Path(text).resolve())  # symlinks and `..` resolved before the containment test
    except (OSError, RuntimeError, ValueError):
        return None


def _under(location: str, root: str) -> bool:
    # A root is itself allowed (an adapter folder may be a root); `root` always ends with `/`.
    return location.startswith(root) or location + "/" == root
