"""Where remote mode's server and key come from: `PEMREG_URL` + `PEMREG_API_KEY`, else the file that
`pemreg login` writes (`$PEMREG_HOME/remote.json`, mode 0600). Read with the standard library only, so
deciding local vs remote costs no import."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "remote.json"
# Commands that act on the server's own database, store or Prefect: they cannot run through the API.
# `runner` is this machine's composer for local mode: the server composes for remote mode.
SERVER_ONLY = {"init", "serve", "worker", "gc", "demo", "prefect-server", "reconcile", "runner"}


@dataclass(frozen=True)
class Remote:
    url: str
    api_key: str
    source: str  # "environment" or the config file's path, for messages


def home() -> Path:
    return Path(os.environ.get("PEMREG_HOME") or "~/.pemreg").expanduser()


def config_path() -> Path:
    return home() / CONFIG_NAME


def current() -> Remote | None:
    """The remote server in effect, or None (local mode). The environment wins over the file."""
    url = os.environ.get("PEMREG_URL", "").strip()
    if url:
        return Remote(url.rstrip("/"), os.environ.get("PEMREG_API_KEY", "").strip(), "environment")
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise OSError(f"{path}: unreadable remote configuration ({exc}); run `pemreg logout`") from None
    return Remote(str(data["url"]).rstrip("/"), str(data.get("api_key", "")), str(path))


def save(url: str, api_key: str) -> Path:
    """Write the config with 0600 from the start (no window in which another user could read the key)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{CONFIG_NAME}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"url": url.rstrip("/"), "api_key": api_key}, out)
    os.replace(tmp, path)
    return path


def forget() -> bool:
    path = config_path()
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
