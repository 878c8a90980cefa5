"""provenance.json (`schema: pemreg.provenance/v1`, SLSA-shaped) and the environment it records."""

from __future__ import annotations

import json
import platform
import subprocess
from datetime import UTC, datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

SCHEMA = "pemreg.provenance/v1"
_PACKAGES = ("pem-registry", "torch", "peft", "safetensors", "transformers", "prefect")


@lru_cache
def git_commit() -> str | None:
    """HEAD of the checkout this package runs from, if it is one (editable installs)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment(device: str | None = None) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for pkg in _PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "packages": versions,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "device": device or "cpu",
    }


def build_provenance(
    *,
    subject: dict[str, dict[str, Any]],
    kind: str,
    principal: str,
    trigger: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`subject`: filename -> {sha256, size}. `kind`: 'upload' or 'composition'."""
    now = datetime.now(UTC).isoformat()
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "kind": kind,
        "subject": [
            {"name": n, "digest": {"sha256": f["sha256"]}, "size": f["size"]}
            for n, f in sorted(subject.items())
        ],
        "environment": environment(),
        "run": {"trigger": trigger, "principal": principal, "started": now, "finished": now},
    }
    doc.update(extra or {})
    return doc


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
