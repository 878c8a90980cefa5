"""User-given local paths: `~` expands, and an unknown `~user` stays literal instead of crashing."""

from __future__ import annotations

from pathlib import Path


def user_path(text: str) -> Path:
    path = Path(text)
    try:
        return path.expanduser()
    except RuntimeError:  # "~name" with no such user (or no home at all): a literal relative path
        return path
