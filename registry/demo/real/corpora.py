"""Four text domains found on any Debian machine with Python, split into train / validation / test BY
DOCUMENT (a file, or one pydoc topic), never by line.

- `code`: the Python standard library's own source (`*.py` under `sysconfig`'s stdlib, no tests).
- `prose`: the English reference text in `pydoc_data/topics.py` (one document per topic).
- `licence`: Debian's licence and copyright texts (`/usr/share/common-licenses/*` and
  `/usr/share/doc/*/copyright`, which Debian keeps even on images that drop other docs).
- `shell`: dpkg maintainer scripts (`/var/lib/dpkg/info/*.{preinst,postinst,prerm,postrm,config}`).

Identical files (same bytes) count once. The split is a hash of (seed, domain, document id): stable
across runs and machines with the same files.
"""

from __future__ import annotations

import hashlib
import importlib
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DOMAINS = ("code", "prose", "licence", "shell")
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "pydoc_data", "__pycache__", "turtledemo"}
MAX_DOC_CHARS = 200_000  # a few generated files (e.g. unicode tables) are huge and unlike the rest
MIN_DOC_CHARS = 600  # too short to hold a full evaluation window


@dataclass(frozen=True)
class Doc:
    domain: str
    id: str  # path or topic name
    text: str


@dataclass
class Split:
    train: list[Doc] = field(default_factory=list)
    val: list[Doc] = field(default_factory=list)
    test: list[Doc] = field(default_factory=list)


def _read(path: Path) -> str | None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    return text if MIN_DOC_CHARS <= len(text) <= MAX_DOC_CHARS else None


def _code() -> Iterator[Doc]:
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if SKIP_DIRS & set(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        if (text := _read(path)) is not None:
            yield Doc("code", str(rel), text)


def _prose() -> Iterator[Doc]:
    topics: dict[str, str] = importlib.import_module("pydoc_data.topics").topics
    for name in sorted(topics):
        text = topics[name]
        if MIN_DOC_CHARS <= len(text) <= MAX_DOC_CHARS:
            yield Doc("prose", name, text)


def _licence() -> Iterator[Doc]:
    paths = sorted(Path("/usr/share/common-licenses").glob("*")) + sorted(
        Path("/usr/share/doc").glob("*/copyright")
    )
    for path in paths:
        if path.is_file() and (text := _read(path)) is not None:
            yield Doc("licence", str(path), text)


def _shell() -> Iterator[Doc]:
    info = Path("/var/lib/dpkg/info")
    for path in sorted(info.glob("*")):
        if path.suffix in (".preinst", ".postinst", ".prerm", ".postrm", ".config") and path.is_file():
            text = _read(path)
            if text is not None and text.startswith("#!"):
                yield Doc("shell", str(path), text)


SOURCES = {"code": _code, "prose": _prose, "licence": _licence, "shell": _shell}


def documents(domain: str) -> list[Doc]:
    """The domain's documents, identical contents once (the first path in sorted order wins)."""
    seen: set[str] = set()
    out = []
    for doc in SOURCES[domain]():
        digest = hashlib.sha256(doc.text.encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(doc)
    return out


def _rank(seed: int, doc: Doc) -> str:
    return hashlib.sha256(f"{seed}\0{doc.domain}\0{doc.id}".encode()).hexdigest()


def split(domain: str, n_test: int, n_val: int, seed: int) -> Split:
    """The first `n_test` documents in hash order are the test set, the next `n_val` validation, the
    rest training. Raises when a domain has too few documents on this machine."""
    docs = sorted(documents(domain), key=lambda d: _rank(seed, d))
    if len(docs) < n_test + n_val + 4:
        raise RuntimeError(
            f"corpus {domain}: only {len(docs)} documents on this machine, need {n_test + n_val + 4}"
        )
    return Split(train=docs[n_test + n_val :], val=docs[n_test : n_test + n_val], test=docs[:n_test])


def halves(docs: list[Doc], seed: int) -> tuple[list[Doc], list[Doc]]:
    """Two disjoint halves of a training set, by document (for the distribution-generalization pair)."""
    ranked = sorted(docs, key=lambda d: _rank(seed + 1, d))
    return ranked[0::2], ranked[1::2]
