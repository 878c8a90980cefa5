"""Named points where a test can stop a process to kill it there (crash tests of the run lifecycle).

`failpoint("before_upload")` does nothing unless PEMREG_FAILPOINTS (comma-separated) names it. When it
does, it writes `<name>` into PEMREG_FAILPOINT_DIR (default: the working directory) with this process's
pid, then blocks, so the test can SIGKILL the process exactly there. Never set in production.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

BLOCK_SECONDS = 600.0  # bounded: a forgotten failpoint does not hang a process forever


def failpoint(name: str) -> None:
    wanted = os.environ.get("PEMREG_FAILPOINTS")
    if not wanted or name not in {w.strip() for w in wanted.split(",")}:
        return
    marker = Path(os.environ.get("PEMREG_FAILPOINT_DIR", ".")) / name
    # Written whole, then renamed into place: a test that sees the marker reads the complete pid.
    partial = marker.with_name(f".{name}.{os.getpid()}")
    partial.write_text(str(os.getpid()))
    partial.replace(marker)
    time.sleep(BLOCK_SECONDS)
    raise RuntimeError(f"failpoint {name}: not killed within {BLOCK_SECONDS:.0f} s")
