"""Waiting on a failpoint's marker (registry/failpoints.py): the file names the pid of the process
that stopped there, so a test can SIGKILL exactly that process."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path


def failpoint_pid(marker: Path, proc: subprocess.Popen[bytes], timeout: float = 180) -> int:
    """The pid in `marker` once it holds one, within `timeout` s; fails if `proc` (the process tree
    expected to reach the failpoint) exits first. The failpoint renames a complete marker into place;
    an empty read is still waited out, never parsed (reading between create and write: `int('')`)."""
    deadline = time.monotonic() + timeout
    while True:
        text = marker.read_text().strip() if marker.exists() else ""
        if text.isdigit():
            return int(text)
        assert proc.poll() is None, f"exited {proc.returncode} before the failpoint {marker.name}"
        assert time.monotonic() < deadline, f"failpoint {marker.name} not reached in {timeout:.0f} s"
        time.sleep(0.05)
