"""One identity per base model: a registered base is found by name, by source or by weights digest.

An adapter's config names its base as PEFT saw it at training time (`base_model_name_or_path`): a hub
id, or a local path such as `./my-base`. The same base registered as `tiny-llama --source ./my-base`
must be found from either spelling, so sources are compared normalised: local paths resolved to
absolute real paths (only where the caller may look at the local disk: the CLI, not a REST request),
URIs and hub ids without trailing slashes.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.catalog import models as m
from registry.errors import InvalidInput, NotFound
from registry.hashing import sha256_file
from registry.paths import user_path

# What may be auto-registered: a hub id (`org/name` or `name`), never a path or a URI.
HUB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
URI_RE = re.compile(r"[a-z][a-z0-9+.-]*://")
MAX_NAME = 256
MAX_REVISION = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
WEIGHTS_FILE = "model.safetensors"


def check_base_label(label: str, field: str = "base_model") -> tuple[str, str | None]:
    """`NAME` or `NAME@REVISION` -> (name, revision); the catalog's limits, before anything is stored."""
    name, sep, revision = label.partition("@")
    if not name.strip() or _CONTROL.search(label):
        raise InvalidInput(f"{field}: {label[:80]!r} is not a base model name", field=field)
    if len(name) > MAX_NAME:
        raise InvalidInput(f"{field}: name longer than {MAX_NAME} characters", field=field)
    if sep and not revision:
        raise InvalidInput(f"{field}: empty revision after '@'", field=field)
    if len(revision) > MAX_REVISION:
        raise InvalidInput(f"{field}: revision longer than {MAX_REVISION} characters", field=field)
    return name, revision or None


def is_path_like(text: str) -> bool:
    """A spelling that PEFT would read as a local folder rather than a hub id."""
    return (
        text.startswith(("/", ".", "~", "\\"))
        or ".." in Path(text).parts
        or (not URI_RE.match(text) and not HUB_ID_RE.fullmatch(text))
    )


def normalise_source(source: str, *, local: bool) -> str:
    """Comparable spelling of a source. With `local`, an existing or path-like local spelling becomes
    its absolute real path; without, only lexical clean-up (a REST request never probes our disk)."""
    text = source.strip()
    if URI_RE.match(text):
        scheme, _, rest = text.partition("://")
        return f"{scheme.lower()}://{rest.rstrip('/')}"
    if local and (is_path_like(text) or user_path(text).exists()):
        try:
            return str(user_path(text).resolve())
        except (OSError, RuntimeError):
            return text.rstrip("/") or "/"
    return text.rstrip("/") or "/"


def local_dir(source: str) -> Path | None:
    """The base's folder on this machine, if its source is one (callers decide whether they may look)."""
    if URI_RE.match(source):
        if not source.startswith("file://"):
            return None
        source = source.removeprefix("file://")
    path = user_path(source)
    try:
        return path.resolve() if path.is_dir() else None
    except OSError:
        return None


def _by_name(session: Session, name: str, revision: str | None) -> m.BaseModel | None:
    query = select(m.BaseModel).where(m.BaseModel.name == name)
    if revision:
        query = query.where(m.BaseModel.revision == revision)
    rows = session.scalars(query.order_by(m.BaseModel.id)).all()
    if len(rows) > 1:
        revisions = ", ".join(r.revision for r in rows)
        raise InvalidInput(
            f"base_model: {name!r} has several revisions ({revisions}); name one as NAME@REVISION",
            field="base_model",
        )
    return rows[0] if rows else None


def _by_source(session: Session, text: str, revision: str | None, *, local: bool) -> m.BaseModel | None:
    wanted = normalise_source(text, local=local)
    rows = session.scalars(select(m.BaseModel).order_by(m.BaseModel.id)).all()
    hits = [
        r
        for r in rows
        if normalise_source(r.source, local=local) == wanted and (not revision or r.revision == revision)
    ]
    return hits[0] if len(hits) == 1 else None


def _by_digest(session: Session, text: str, *, local: bool) -> m.BaseModel | None:
    if not local:
        return None
    folder = local_dir(text)
    if folder is None or not (folder / WEIGHTS_FILE).is_file():
        return None
    rows = session.scalars(select(m.BaseModel).where(m.BaseModel.sha256.is_not(None))).all()
    if not rows:
        return None  # nothing to compare with: don't read a multi-GB file for nothing
    digest = sha256_file(folder / WEIGHTS_FILE)
    return next((r for r in rows if r.sha256 == digest), None)


def find_base(session: Session, label: str, *, local: bool) -> m.BaseModel | None:
    """By name (`NAME[@REVISION]`), else by normalised source, else by weights digest."""
    name, revision = check_base_label(label)
    return (
        _by_name(session, name, revision)
        or _by_source(session, label if not revision else name, revision, local=local)
        or _by_digest(session, name, local=local)
    )


def near_matches(session: Session, label: str, limit: int = 3) -> list[str]:
    rows = session.scalars(select(m.BaseModel)).all()
    names = sorted({f"{r.name}@{r.revision}" for r in rows} | {r.name for r in rows})
    return difflib.get_close_matches(label, names, n=limit, cutoff=0.5)


def not_registered(session: Session, label: str, field: str) -> NotFound:
    near = near_matches(session, label)
    hint = f"; did you mean {', '.join(near)}?" if near else "; see `pemreg base-models list`"
    return NotFound(f"{field}: base model {label[:120]!r} is not registered{hint}")


@dataclass(frozen=True)
class BasePlan:
    """Which base an adapter binds to: an existing row, or one to auto-register (`auto`)."""

    name: str
    revision: str
    source: str
    base_id: int | None = None

    @property
    def auto(self) -> bool:
        return self.base_id is None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.revision}"


def plan_base(
    session: Session, requested: str | None, from_config: str | None, *, local: bool, default_revision: str
) -> BasePlan:
    """Decide before any byte is stored. `--base-model` must name a registered base; a config's base
    is looked up by every identity, and auto-registered only if it is a plain hub id nothing matches."""
    if requested:
        row = find_base(session, requested, local=local)
        if row is None:
            raise not_registered(session, requested, "base_model")
        return BasePlan(row.name, row.revision, row.source, row.id)
    if not from_config:
        raise InvalidInput(
            "base_model: the adapter config names no base_model_name_or_path; pass --base-model",
            field="base_model",
        )
    row = find_base(session, from_config, local=local)
    if row is not None:
        return BasePlan(row.name, row.revision, row.source, row.id)
    name, revision = check_base_label(from_config, "base_model_name_or_path")
    if is_path_like(name):
        raise InvalidInput(
            f"base_model_name_or_path: {from_config[:120]!r} is a local path that matches no registered "
            "base model; register it first (pemreg base-models add NAME --source PATH) or pass --base-model",
            field="base_model",
        )
    return BasePlan(name, revision or default_revision, name)
