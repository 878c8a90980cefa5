"""/docs (Swagger UI) and /redoc (ReDoc) render in a real headless Chromium with no network: every
request that would leave 127.0.0.1 is refused by the browser itself and recorded, and the pages must
still show the API. Screenshots go to the test's tmp folder and to .test-artifacts/screenshots/
(ignored by git), beside the other browser tests' pictures."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Page, Request, Route, sync_playwright

from tests.live_server import _wait_ready as wait_ready
from tests.live_server import clean_env, free_port

CHROMIUM = "/usr/bin/chromium"
# No DNS for anything but loopback: a CDN URL fails in the browser even if a route slipped through.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
SHOTS = Path(__file__).resolve().parents[2] / ".test-artifacts" / "screenshots"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("docs")
    port = free_port()
    env = clean_env(
        PEMREG_HOME=str(tmp / "home"),
        PEMREG_DATABASE_URL=f"sqlite:///{tmp / 'r.db'}",
        PEMREG_ARTIFACT_STORE=(tmp / "store").as_uri(),
    )
    subprocess.run(
        [sys.executable, "-m", "api.cli.main", "init"], env=env, check=True, capture_output=True, timeout=120
    )
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli.main", "serve", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, tmp / "serve.log")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _offline_page(browser_page: Page, left: list[str]) -> None:
    def guard(route: Route, request: Request) -> None:
        if urlparse(request.url).hostname in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            left.append(request.url)
            route.abort("internetdisconnected")

    browser_page.route("**/*", guard)


def _shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=False)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / name)
    return path


def test_swagger_ui_and_redoc_render_without_network(server: str, tmp_path: Path) -> None:
    left: list[str] = []
    failed: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _offline_page(page, left)
            page.on("requestfailed", lambda r: failed.append(r.url))

            page.goto(f"{server}/docs")
            page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
            assert "PEM Registry" in page.inner_text(".swagger-ui .info .title")
            page.wait_for_selector(".opblock", timeout=30_000)
            operations = page.locator(".opblock").count()
            assert operations >= 20, operations  # every route of the API, grouped by tag
            assert page.get_by_text("/v1/base-models/{label}", exact=True).count() >= 1
            assert (_shot(page, tmp_path, "docs-offline.png")).stat().st_size > 10_000

            page.goto(f"{server}/redoc")
            page.wait_for_selector("h1", timeout=30_000)
            page.wait_for_function(
                "document.querySelectorAll('[data-section-id]').length > 10", timeout=30_000
            )
            assert "PEM Registry" in page.inner_text("h1")
            assert (_shot(page, tmp_path, "redoc-offline.png")).stat().st_size > 10_000
        finally:
            browser.close()
    assert left == [], left  # nothing was even attempted outside loopback
    assert [u for u in failed if "127.0.0.1" in u] == []
