"""Held-out files for the flows' evaluations: one JSONL per test document, one per validation domain.

Each test document contributes ONE window of `window` tokens taken a quarter of the way into it (past
licence headers and module docstrings), decoded back to text: the flow's evaluator scores it. Each
test document is its own evaluation (`<domain>.<nn>`), so the flow's metrics give a perplexity per
document, which the report aggregates and bootstraps. Validation documents (pooled per domain,
`val-<domain>`) drive the unlearning search and its gate, so lambda is never chosen on the test set;
pooled per pair of domains, they choose each pair variant's scale.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .corpora import Doc
from .tasks import TaskItem, write_accuracy


@dataclass(frozen=True)
class HeldOut:
    name: str  # evaluation name
    domain: str
    doc_id: str
    path: Path
    text: str
    tokens: int  # scored tokens (the evaluator scores every token after the first)


def window(tok: Any, doc: Doc, size: int) -> str:
    lines = doc.text.splitlines(keepends=True)
    text = "".join(lines[len(lines) // 4 :])
    ids = tok(text, add_special_tokens=False)["input_ids"][:size]
    if len(ids) < size:  # short document: from its start
        ids = tok(doc.text, add_special_tokens=False)["input_ids"][:size]
    return str(tok.decode(ids))


def write_test(tok: Any, docs: list[Doc], size: int, folder: Path) -> list[HeldOut]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, doc in enumerate(docs):
        text = window(tok, doc, size)
        name = f"{doc.domain}.{i:02d}"
        path = folder / f"{name}.jsonl"
        path.write_text(json.dumps({"text": text, "source": doc.id}) + "\n")
        tokens = len(tok(text, add_special_tokens=False)["input_ids"]) - 1
        out.append(HeldOut(name, doc.domain, doc.id, path, text, tokens))
    return out


def write_val(tok: Any, domain: str, docs: list[Doc], size: int, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"val-{domain}.jsonl"
    path.write_text("".join(json.dumps({"text": window(tok, d, size), "source": d.id}) + "\n" for d in docs))
    return path


def val_texts(path: Path) -> list[str]:
    """The windows of a validation file (write_val), in order."""
    return [json.loads(line)["text"] for line in path.read_text().splitlines() if line]


def write_pooled(parts: Sequence[Path], path: Path) -> Path:
    """One validation dataset of several domains' files (a pair's: its method search's objective,
    the same windows the sweep pools to choose each variant's scale)."""
    path.write_text("".join(p.read_text() for p in parts))
    return path


@dataclass(frozen=True)
class HeldItem:
    """One test item of a generated task (tasks.py): its own `accuracy` evaluation `<task>.<nnn>`."""

    name: str
    task: str  # the item set: kind | mood | <transfer task>-<domain>
    path: Path


def write_items(task: str, items: Sequence[TaskItem], folder: Path) -> list[HeldItem]:
    out = []
    for i, item in enumerate(items):
        name = f"{task}.{i:03d}"
        out.append(HeldItem(name, task, write_accuracy([item], folder / task / f"{name}.jsonl")))
    return out
