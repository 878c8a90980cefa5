"""The web catalog at `/`: pages, their static files (served from this package, no CDN), sign-in."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from . import oidc
from .render import HERE
from .routes import router


def mount(app: FastAPI) -> None:
    app.include_router(router)
    app.include_router(oidc.router)  # sign-in through the SSO issuer, when configured
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="web_static")
