"""One identity per base model, never taken from an unverified string.

An adapter's config names its base as PEFT saw it at training time (`base_model_name_or_path`): a hub
id, or a path such as `./my-base` or `my-base` that means something only on the training machine. The
rule, the same for the CLI (local or remote mode), `registry.client` and REST:
- `--base-model NAME[@REV]` names a registered base (else refused with near matches);
- a config label that names a folder on the caller's machine is matched only by the evidence the
  caller computed there (registry.base_evidence: weights digest, config fingerprint), never by the
  path string; no match is refused with near matches;
- any other label (a hub id, a URI) is matched by name or by its normalised source; an unmatched one
  that is a plain hub id is registered as a new base only when the caller asks (`create_base`: the
  CLI does, and says so in a `note:`), never implicitly over REST; a path-like label is refused.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Row, select

from registry.base_evidence import BaseEvidence
from registry.catalog import tables as t
from registry.errors import InvalidInput, NotFound
from registry.paths import user_path
from registry.service.registration.base_named import one_named

# The base rows are read on Core (`Db`: an ORM Session or a Core Connection, both execute a Core
# select), so the read-only callers (`pemreg base-models show` in local mode) load no ORM.
BaseRow = Row[Any]
_b = t.base_models.c


class Db(Protocol):
    def execute(self, statement: Any, /) -> Any: ...


# What may be auto-registered: a hub id (`org/name` or `name`), never a path or a URI.
HUB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?")
URI_RE = re.compile(r"[a-z][a-z0-9+.-]*://")
MAX_NAME = 256
MAX_REVISION = 128
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


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


def by_name(session: Db, name: str, revision: str | None) -> BaseRow | None:
    """The base `name` (at `revision`); without a revision, refused when the name has several."""
    query = select(t.base_models).where(_b.name == name)
    if revision:
        query = query.where(_b.revision == revision)
    return one_named(session.execute(query.order_by(_b.id)).all(), name)


def _by_source(session: Db, text: str, revision: str | None) -> BaseRow | None:
    """Lexical: a URI or hub id spelled as a registered source (a path string is never compared)."""
    wanted = normalise_source(text, local=False)
    rows = session.execute(select(t.base_models).order_by(_b.id)).all()
    hits = [
        r
        for r in rows
        if normalise_source(r.source, local=False) == wanted and (not revision or r.revision == revision)
    ]
    return hits[0] if len(hits) == 1 else None


def _label(row: Any) -> str:
    return f"{row.name}@{row.revision}"


def _contradicts(row: Any, evidence: BaseEvidence) -> bool:
    """The row's recorded identity differs from what the caller saw in its folder."""
    if row.sha256 and evidence.weights_sha256:
        return row.sha256 != evidence.weights_sha256
    if row.config_sha256 and evidence.config_sha256:
        return row.config_sha256 != evidence.config_sha256
    return False


def by_evidence(session: Db, evidence: BaseEvidence, revision: str | None = None) -> list[BaseRow]:
    """Registered bases the evidence identifies: by weights digest when one matches, else by config
    fingerprint among the rows whose recorded digest does not contradict it."""
    query = select(t.base_models).order_by(_b.id)
    if revision:
        query = query.where(_b.revision == revision)
    if evidence.weights_sha256:
        hits = session.execute(query.where(_b.sha256 == evidence.weights_sha256)).all()
        if hits:
            return list(hits)
    if not evidence.config_sha256:
        return []
    rows = session.execute(query.where(_b.config_sha256 == evidence.config_sha256)).all()
    return [r for r in rows if not _contradicts(r, evidence)]


def find_base(session: Db, label: str) -> BaseRow | None:
    """By name (`NAME[@REVISION]`), else by normalised source (a URI or hub id, compared lexically)."""
    name, revision = check_base_label(label)
    return by_name(session, name, revision) or _by_source(session, label if not revision else name, revision)


def near_matches(session: Db, label: str, limit: int = 3, evidence: BaseEvidence | None = None) -> list[str]:
    """Registered bases a user may have meant: close names (also to the folder's own name), then bases
    of the same architecture."""
    rows = session.execute(select(_b.name, _b.revision, _b.architecture).order_by(_b.id)).all()
    names = sorted({_label(r) for r in rows} | {r.name for r in rows})
    stem = label.rstrip("/").rsplit("/", 1)[-1]
    near = difflib.get_close_matches(label, names, n=limit, cutoff=0.5)
    near += [n for n in difflib.get_close_matches(stem, names, n=limit, cutoff=0.5) if n not in near]
    if evidence is not None and evidence.architecture:
        near += [_label(r) for r in rows if r.architecture == evidence.architecture and _label(r) not in near]
    return near[:limit]


def not_registered(session: Db, label: str, field: str, evidence: BaseEvidence | None = None) -> NotFound:
    near = near_matches(session, label, evidence=evidence)
    hint = f"; did you mean {', '.join(near)}?" if near else "; see `pemreg base-models list`"
    error = BaseNotFound(f"{field}: base model {label[:120]!r} is not registered{hint}")
    error.field = field
    return error


class BaseNotFound(NotFound):
    """No registered base model is the one an adapter names (HTTP 404 naming `base_model`)."""

    field = "base_model"


@dataclass(frozen=True)
class BasePlan:
    """Which base an adapter binds to: an existing row, or one to register on the way (`auto`)."""

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


def _plan(row: BaseRow) -> BasePlan:
    return BasePlan(row.name, row.revision, row.source, row.id)


def _no_path_match(session: Db, label: str, why: str, evidence: BaseEvidence | None) -> InvalidInput:
    near = near_matches(session, label, evidence=evidence)
    hint = f"; near matches: {', '.join(near)}" if near else ""
    return InvalidInput(
        f"base_model_name_or_path: {label[:120]!r} is a local path that matches no registered base model "
        f"({why}); register the base first (pemreg base-models add NAME --source PATH) or pass "
        f"--base-model{hint}",
        field="base_model",
    )


def _from_evidence(session: Db, label: str, evidence: BaseEvidence) -> BasePlan:
    rows = by_evidence(session, evidence)
    if len(rows) == 1:
        return _plan(rows[0])
    if len(rows) > 1:
        names = ", ".join(_label(r) for r in rows)
        raise InvalidInput(
            f"base_model_name_or_path: the folder {label[:120]!r} matches several registered base models "
            f"({names}); pass --base-model",
            field="base_model",
        )
    why = "compared by the weights digest and config fingerprint of that folder on the registering machine"
    if evidence.empty:
        why = "that folder on the registering machine has no config.json or model.safetensors"
    raise _no_path_match(session, label, why, evidence)


def plan_base(
    session: Db,
    requested: str | None,
    from_config: str | None,
    *,
    evidence: BaseEvidence | None = None,
    create: bool = False,
    default_revision: str,
) -> BasePlan:
    """Decide before any byte is stored (the rule is in the module docstring). `evidence`: what the
    caller found in the folder `from_config` names on its own disk (None: it names no folder there)."""
    if requested:
        row = find_base(session, requested)
        if row is None:
            raise not_registered(session, requested, "base_model", evidence)
        if evidence is not None and _contradicts(row, evidence):
            raise InvalidInput(
                f"base_model: {_label(row)} was registered with other weights or config than the folder "
                f"{(from_config or '')[:120]!r} the adapter names; check --base-model",
                field="base_model",
            )
        return _plan(row)
    if not from_config:
        raise InvalidInput(
            "base_model: the adapter config names no base_model_name_or_path; pass --base-model",
            field="base_model",
        )
    name, revision = check_base_label(from_config, "base_model_name_or_path")
    if evidence is not None:
        row = by_name(session, name, revision) if not is_path_like(name) else None
        if row is not None and not _contradicts(row, evidence):
            return _plan(row)
        return _from_evidence(session, from_config, evidence)
    if is_path_like(name):
        raise _no_path_match(session, from_config, "it is no folder on the registering machine", None)
    row = find_base(session, from_config)
    if row is not None:
        return _plan(row)
    if not create:
        raise BaseNotFound(
            f"base_model_name_or_path: base model {from_config[:120]!r} is not registered; register it "
            "first (pemreg base-models add / POST /v1/base-models), pass base_model, or set create_base"
            + _near_suffix(session, from_config)
        )
    return BasePlan(name, revision or default_revision, name)


def _near_suffix(session: Db, label: str) -> str:
    near = near_matches(session, label)
    return f"; near matches: {', '.join(near)}" if near else ""


def require_base_row(db: Db, spec: str) -> Any:
    """`spec` is NAME or NAME@REVISION; NotFound (with near matches) when no base is registered so."""
    name, _, revision = spec.partition("@")
    row = by_name(db, name, revision or None)
    if row is None:
        raise not_registered(db, spec, "base_model")
    return row
