"""Four text domains found on any Debian machine with Python, split into train / validation / test BY
DOCUMENT (a file, or one pydoc topic), never by line.

- `code`: the Python standard library's own source (`*.py` under `sysconfig`'s stdlib, no tests).
- `prose`: the English reference text in `pydoc_data/topics.py` (one document per topic).
- `licence`: Debian's licence and copyright texts (`/usr/share/common-licenses/*` and
  `/usr/share/doc/*/copyright`, which Debian keeps even on images that drop other docs).
- `shell`: dpkg maintainer scripts (`/var/lib/dpkg/info/*.{preinst,postinst,prerm,postrm,config}`).

Identical files (same bytes) count once; every document is cut to its first `DOC_CHARS` characters
(about 2k tokens), so a training set of 40k tokens draws on 20 files or more, not on a few long ones.
Generated files and near-duplicates go (hygiene.py). The split is a hash of (seed, domain, document
id): stable across runs and machines with the same files. Held-out windows whose 5-grams mostly occur
in another document are skipped (they go to training instead).
"""

from __future__ import annotations

import hashlib
import importlib
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from . import hygiene

DOMAINS = ("code", "prose", "licence", "shell")
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "pydoc_data", "__pycache__", "turtledemo"}
MAX_DOC_CHARS = 200_000  # a few generated files (e.g. unicode tables) are huge and unlike the rest
MIN_DOC_CHARS = 600  # too short to hold a full evaluation window
DOC_CHARS = 8_000  # a document's first ~2k tokens: training draws on many files, not a few long ones


@dataclass(frozen=True)
class Doc:
    domain: str
    id: str  # path or topic name
    text: str


@dataclass(frozen=True)
class Sizes:
    """What hygiene did to one domain (the report states it)."""

    found: int  # distinct files / topics of MIN_DOC_CHARS..MAX_DOC_CHARS
    generated: int  # dropped as generated (hygiene.generated)
    near_duplicates: int  # dropped as a near-duplicate of a kept document
    leaked_windows: int  # skipped as held-out: the window's 5-grams mostly occur in another document
    test: int
    val: int
    train: int
    max_jaccard: float  # the largest 5-gram Jaccard between two kept documents (< hygiene.JACCARD)
    max_containment: float  # the largest share of a held-out (test or val) window's 5-grams in training


@dataclass
class Split:
    train: list[Doc] = field(default_factory=list)
    val: list[Doc] = field(default_factory=list)
    test: list[Doc] = field(default_factory=list)
    sizes: Sizes | None = None


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


def _cap(text: str) -> str:
    """The first DOC_CHARS characters, cut at a line end when there is one in the last quarter."""
    if len(text) <= DOC_CHARS:
        return text
    cut = text.rfind("\n", DOC_CHARS * 3 // 4, DOC_CHARS)
    return text[: cut + 1 if cut > 0 else DOC_CHARS]


def documents(domain: str) -> list[Doc]:
    """The domain's documents, identical contents once (the first path in sorted order wins), capped."""
    seen: set[str] = set()
    out = []
    for doc in SOURCES[domain]():
        digest = hashlib.sha256(doc.text.encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(Doc(doc.domain, doc.id, _cap(doc.text)))
    return out


def _rank(seed: int, doc: Doc) -> str:
    return hashlib.sha256(f"{seed}\0{doc.domain}\0{doc.id}".encode()).hexdigest()


def split(domain: str, n_test: int, n_val: int, seed: int, window: Callable[[Doc], str]) -> Split:
    """Generated files and near-duplicates out; then, in hash order, the first `n_test` documents whose
    held-out window (`window(doc)`) is not mostly found in another document are the test set, the next
    `n_val` such documents validation, everything else training. Raises when a domain has too few
    documents on this machine."""
    found = documents(domain)
    clean = sorted((d for d in found if not hygiene.generated(d.text)), key=lambda d: _rank(seed, d))
    grams = [hygiene.shingles(d.text) for d in clean]
    kept, max_jaccard = hygiene.keep_distinct(grams)
    docs = [clean[i] for i in kept]
    grams = [grams[i] for i in kept]
    if len(docs) < n_test + n_val + 4:
        raise RuntimeError(
            f"corpus {domain}: only {len(docs)} documents on this machine, need {n_test + n_val + 4}"
        )
    counts: dict[int, int] = {}
    for gs in grams:
        for g in gs:
            counts[g] = counts.get(g, 0) + 1
    held: list[int] = []
    windows: dict[int, frozenset[int]] = {}
    leaked = 0
    for i, (doc, own) in enumerate(zip(docs, grams, strict=True)):
        if len(held) == n_test + n_val:
            break
        w = hygiene.shingles(window(doc))
        elsewhere = sum(counts.get(g, 0) - (g in own) > 0 for g in w) / max(1, len(w))
        if elsewhere > hygiene.CONTAINMENT:
            leaked += 1
            continue
        held.append(i)
        windows[i] = w
    if len(held) < n_test + n_val or len(docs) - len(held) < 4:
        raise RuntimeError(f"corpus {domain}: too few documents with an unshared held-out window")
    taken = set(held)
    train = [d for i, d in enumerate(docs) if i not in taken]
    pool = hygiene.union(g for i, g in enumerate(grams) if i not in taken)
    sizes = Sizes(
        found=len(found),
        generated=len(found) - len(clean),
        near_duplicates=len(clean) - len(docs),
        leaked_windows=leaked,
        test=n_test,
        val=n_val,
        train=len(train),
        max_jaccard=round(max_jaccard, 4),
        max_containment=round(max(hygiene.containment(w, pool) for w in windows.values()), 4),
    )
    return Split(
        train=train,
        val=[docs[i] for i in held[n_test:]],
        test=[docs[i] for i in held[:n_test]],
        sizes=sizes,
    )


def subdistributions(docs: list[Doc]) -> tuple[list[Doc], list[Doc]]:
    """The code training files as two disjoint sub-distributions (the distribution-generalization
    pair): files inside a stdlib package (`email/message.py`, `asyncio/...`, `idlelib/...`) and
    top-level modules (`os.py`). Different authors, eras and idioms, not a random halving; the test
    documents are drawn from both (the mixture). Order kept (the split's hash order)."""
    return [d for d in docs if "/" in d.id], [d for d in docs if "/" not in d.id]


def interleave(sets: list[list[Doc]]) -> list[Doc]:
    """Round robin over the sets (the `generic` training set: tokenise_blocks stops at its token budget,
    so every domain must come early)."""
    out: list[Doc] = []
    for i in range(max((len(s) for s in sets), default=0)):
        out += [s[i] for s in sets if i < len(s)]
    return out
