"""Data hygiene for the real-model corpora: generated files out, near-duplicates never across splits.

- **Generated files.** A document is generated (codec tables such as `encodings/cp865.py`,
  `html/entities.py`, `_sysconfigdata_*.py`) when more than half of its non-empty lines are *data
  lines*: with string and number literals and a trailing comment removed, nothing but punctuation
  (`,:;()[]{}+-=`) and blanks is left, and at least one literal was there. On this machine the rule
  drops 79 of 657 stdlib files (each capped at corpora.DOC_CHARS) and no prose, licence or shell
  document; the next file below the cut is `re/_casefix.py` (48% data lines), then ordinary modules.
- **Near-duplicates.** Two documents are near-duplicates when the Jaccard similarity of their sets of
  word 5-grams (whitespace tokens) is at least `JACCARD`. Documents are visited in the split's hash
  order and a document is kept only when it is no near-duplicate of any document already kept, so no
  near-duplicate pair survives anywhere, in particular across train / validation / test.
- **Leaked windows.** A held-out window is also checked against the training documents: the fraction
  of its word 5-grams found in the training text (containment). Licence files share whole paragraphs
  of the GPL; a window more than `CONTAINMENT` of whose 5-grams occur in another document of the domain
  is not held out (it trains; the next document in hash order is held out instead), and the largest
  containment of a held-out window in the training text is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

DATA_FRACTION = 0.5
JACCARD = 0.5
CONTAINMENT = 0.2
NGRAM = 5
PERMUTATIONS = 128
PREFILTER = 0.25

_STRING = re.compile(r"""[rbuRBU]{0,2}('(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*")""")
_NUMBER = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+(\.\d*)?([eE][-+]?\d+)?)\b")
_COMMENT = re.compile(r"#.*$")
_PUNCT = set(" \t,:;()[]{}+-=")


def data_line(line: str) -> bool:
    """Literals, punctuation and a comment, nothing else (`'\\x00'  # 0x00 -> NULL`, `0x00c7: 0x0080,`)."""
    no_strings = _STRING.sub("", line)
    no_numbers = _NUMBER.sub("", no_strings)
    if no_numbers == line:
        return False
    return set(_COMMENT.sub("", no_numbers)) <= _PUNCT


def data_fraction(text: str) -> float:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return sum(data_line(ln) for ln in lines) / max(1, len(lines))


def generated(text: str) -> bool:
    return data_fraction(text) > DATA_FRACTION


def shingles(text: str) -> frozenset[int]:
    """Hashed word 5-grams (a short text: its whole word sequence as one gram)."""
    words = text.split()
    if len(words) < NGRAM:
        return frozenset({hash(tuple(words))})
    return frozenset(hash(tuple(words[i : i + NGRAM])) for i in range(len(words) - NGRAM + 1))


def jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def _sketches(items: Sequence[frozenset[int]], seed: int = 0) -> np.ndarray:
    """MinHash signatures (items x PERMUTATIONS): the share of equal entries estimates the Jaccard."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 2**63, size=PERMUTATIONS, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=PERMUTATIONS, dtype=np.uint64)
    out = np.empty((len(items), PERMUTATIONS), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i, grams in enumerate(items):
            x = np.fromiter(grams, dtype=np.int64, count=len(grams)).view(np.uint64)
            out[i] = (x[:, None] * a[None, :] + b[None, :]).min(axis=0)
    return out


def keep_distinct(items: Sequence[frozenset[int]]) -> tuple[list[int], float]:
    """Indices kept by the greedy near-duplicate rule (in order), and the largest exact Jaccard between
    two kept items that were compared. MinHash finds the candidates (estimated Jaccard >= PREFILTER;
    with 128 permutations a true 0.5 estimates below 0.25 with probability < 1e-7); the rule itself
    is decided on the exact Jaccard of those candidates."""
    if not items:
        return [], 0.0
    sk = _sketches(items)
    kept: list[int] = []
    worst = 0.0
    for i, grams in enumerate(items):
        if kept:
            est = (sk[kept] == sk[i]).mean(axis=1)
            exact = [jaccard(grams, items[kept[k]]) for k in np.flatnonzero(est >= PREFILTER)]
            best = max(exact, default=0.0)
            if best >= JACCARD:
                continue
            worst = max(worst, best)
        kept.append(i)
    return kept, worst


def containment(window: frozenset[int], pool: set[int]) -> float:
    """Fraction of a window's 5-grams found in `pool` (the training documents' 5-grams)."""
    return len(window & pool) / len(window) if window else 0.0


def union(sets: Iterable[frozenset[int]]) -> set[int]:
    out: set[int] = set()
    for s in sets:
        out |= s
    return out
