"""Templates, safe Markdown and the security headers every page carries.

Jinja2 autoescapes every value; the only markup inserted unescaped is Markdown rendered with raw
HTML disabled (markdown-it escapes it) and unsafe link schemes refused. The Content-Security-Policy
allows scripts and styles from this origin only, so even a missed escape cannot run a script.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",  # pages depend on who is signed in
}

# "js-default": CommonMark + tables, raw HTML off (escaped), javascript:/vbscript:/file: links refused.
_markdown = MarkdownIt("js-default")
_FRONT_MATTER = re.compile(r"\A---\n.*?\n---\n", re.S)


def markdown(text: str | None) -> Markup:
    if not text:
        return Markup("")
    # Safe to mark: markdown-it escaped every raw HTML tag and refused unsafe link schemes.
    return Markup(_markdown.render(_FRONT_MATTER.sub("", text, count=1)))


def front_matter(text: str | None) -> str | None:
    match = _FRONT_MATTER.match(text or "")
    return match.group(0).strip().strip("-").strip() if match else None


def human_size(n: int | float | None) -> str:
    if n is None:
        return ""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1024 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


def when(value: datetime | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m-%d %H:%M UTC")


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.6g}"


env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
env.filters.update(markdown=markdown, size=human_size, when=when, num=number, front_matter=front_matter)


def page(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    html = env.get_template(template).render(request=request, **context)
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)
