"""Scratch folders in the system temp dir, named `pemreg-<kind>-<pid>-<random>`.

A process killed mid-upload or mid-registration cannot remove its own scratch folder; the pid in the
name lets `pemreg gc` (and the start-up of `serve` / `worker`) tell a dead process's leftovers from a
live one's (registry/service/admin/leftovers.py).
"""

from __future__ import annotations

import os
import re
import tempfile

KINDS = ("upload", "ingest", "out")
NAME_RE = re.compile(r"pemreg-(?P<kind>upload|ingest|out)-(?:(?P<pid>\d+)-)?.+")


def scratch_dir(kind: str) -> tempfile.TemporaryDirectory[str]:
    assert kind in KINDS
    return tempfile.TemporaryDirectory(prefix=f"pemreg-{kind}-{os.getpid()}-")
