"""Page tokens of keyset-paginated listings: the last row's sort key, JSON in URL-safe base64.

Clients treat a token as opaque. A well-formed token that decodes to no position (edited, or taken
from another listing) names a page that does not exist: `PageNotFound` (HTTP 404), the way an unknown
object is answered, since its form (`TOKEN_PATTERN`, what the REST schema states) was right.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import TypeVar

from registry.errors import InvalidInput, NotFound

TOKEN_PATTERN = r"^[A-Za-z0-9_-]{0,1024}$"  # "" is the first page, as no token is
T = TypeVar("T")


class PageNotFound(NotFound):
    field = "page_token"


def encode(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode().rstrip("=")


def decode(token: str, arity: int, parse: Callable[[list[str]], T]) -> T:
    """The sort key of `token`: `arity` strings, turned into typed values by `parse`."""
    if not re.fullmatch(TOKEN_PATTERN, token):
        raise InvalidInput("page_token: not a page token", field="page_token")
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        if not (isinstance(raw, list) and len(raw) == arity and all(isinstance(v, str) for v in raw)):
            raise ValueError
        return parse(raw)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise PageNotFound("page_token: no page starts there (not a token this listing returned)") from None
