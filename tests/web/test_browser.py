"""A real headless Chromium (Debian's, driven by Playwright) against a live `pemreg serve` on loopback,
over PostgreSQL and SeaweedFS S3: sign in, search, a composed version, its lineage graph, a node,
a composition (live while running), digest search (pasted and hashed in the browser), the XSS probe,
sign-out. Screenshots go to .test-artifacts/screenshots/ (ignored by git).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, ViewportSize, sync_playwright

from registry.service import Registry
from registry.service.compositions import runs
from registry.service.compositions.inputs import resolve_inputs
from registry.service.compositions.status import RunStatus
from registry.spec import load_spec
from tests.flow_fixtures import settings_env
from tests.pg_service import create_database, drop_database
from tests.s3_service import S3Service
from tests.web.seed import XSS_DESCRIPTION, XSS_TAG, XSS_TAG_KEY, Seeded, seed_catalog

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / ".test-artifacts" / "screenshots"
WIDE: ViewportSize = {"width": 1280, "height": 800}
NARROW: ViewportSize = {"width": 390, "height": 844}

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.s3,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (scripts/test.sh)"),
]


@dataclass
class Live:
    url: str
    reg: Registry
    seeded: Seeded
    running_id: str  # a composition left `running`, for the live-status test


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live(s3_service: S3Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("browser")
    db = create_database("pemreg_web")
    from registry.catalog.migrate import upgrade

    upgrade(db)
    settings = s3_service.settings(
        home=tmp / "home",
        database_url=db,
        store_url=f"s3://{s3_service.bucket}/web-{uuid.uuid4().hex[:8]}",
        principal="tester",
    )
    reg = Registry(settings)
    reg.store.ensure_ready()
    seeded = seed_catalog(reg, tmp / "adapters")
    spec = load_spec("name: acme/slow-merge\nexpression: '0.5 * acme/math + 0.5 * acme/medicine'\n")
    running = runs.create(reg, spec, resolve_inputs(reg, spec), "api")
    runs.transition(reg, running.id, RunStatus.RUNNING)

    port = _free_port()
    env = {
        **os.environ,
        **settings_env(reg),
        "PEMREG_PREFECT_UI_URL": "http://127.0.0.1:4200",
        "PEMREG_SESSION_SECRET": uuid.uuid4().hex * 2,
    }
    pemreg = Path(sys.executable).parent / "pemreg"
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(pemreg), "serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pemreg serve did not start:\n" + (tmp / "serve.log").read_text())
            time.sleep(0.2)
        yield Live(url, reg, seeded, running.id)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        drop_database(db)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=60_000)
        yield b
        b.close()


@dataclass
class Watched:
    page: Page
    dialogs: list[str]
    console: list[str]


def _page(browser: Browser, live: Live, viewport: ViewportSize = WIDE) -> Watched:
    context = browser.new_context(viewport=viewport, base_url=live.url)
    context.set_default_timeout(15_000)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live.url)
    page = context.new_page()
    watched = Watched(page, [], [])

    def on_dialog(dialog: Dialog) -> None:
        watched.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)

    def on_console(msg: ConsoleMessage) -> None:
        watched.console.append(f"{msg.type}: {msg.text}")

    page.on("console", on_console)
    return watched


def _sign_in(page: Page, key: str, next_path: str = "/") -> None:
    page.goto(next_path)
    assert "/signin" in page.url
    page.fill("#key", key)
    page.click("#signin")
    page.wait_for_selector("#who-name")


def _shot(page: Page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_browse_compose_lineage_composition_digest_sign_out(browser: Browser, live: Live) -> None:
    w = _page(browser, live)
    page = w.page
    _sign_in(page, live.seeded.reader_key)
    assert page.inner_text("#who-name") == "key:web-reader"

    # search
    page.fill("#q", "math")
    page.click("#search")
    rows = page.locator("#catalog tbody tr")
    names = [rows.nth(i).locator("a.name").inner_text() for i in range(rows.count())]
    assert names == ["acme/math", "acme/math-medicine"]
    _shot(page, "catalog-search-1280")

    # open the composed version from its row (latest version link)
    page.locator("#catalog tbody tr", has_text="acme/math-medicine").locator("a", has_text="v1").click()
    page.wait_for_selector("#version-title")
    assert page.inner_text("#version-title").startswith("acme/math-medicine@1")
    parents = page.inner_text("#parents")
    assert "acme/math@1\tlinear\t+0.7" in parents and "acme/medicine@1\tlinear\t+0.3" in parents
    # copy-ref button (static JS) puts the ref on the clipboard
    page.click("button[data-copy='acme/math-medicine@1']")
    assert page.evaluate("navigator.clipboard.readText()") == "acme/math-medicine@1"

    # lineage graph: both parents, their weights on the edges
    page.click("#lineage-link")
    page.wait_for_selector("svg#lineage")
    nodes = page.locator("svg#lineage a.node")
    labels = sorted(str(nodes.nth(i).get_attribute("data-label")) for i in range(nodes.count()))
    assert labels == ["acme/math-medicine@1", "acme/math@1", "acme/medicine@1"]
    edge_text = page.locator("svg#lineage .edge-label").all_text_contents()
    assert sorted(edge_text) == ["linear +0.3", "linear +0.7"]
    # follow a node
    page.locator("svg#lineage a.node[data-label='acme/medicine@1']").click()
    page.wait_for_url("**/adapters/acme/medicine/versions/1")
    assert page.inner_text("#version-title").startswith("acme/medicine@1")
    page.go_back()

    # the composition that made it
    page.goto("/adapters/acme/math-medicine/versions/1")
    page.click("#composition-link")
    page.wait_for_selector("#heatmap")
    assert "acme/math@1" in page.inner_text("#inputs")
    assert page.locator("#heatmap rect").count() == 4
    assert "math-ppl" in page.inner_text("#metrics")

    # digest search, pasted
    page.goto("/digest")
    page.fill("#sha256", live.seeded.weights_sha256)
    page.click("#digest-search")
    page.wait_for_selector("#digest-results")
    assert "acme/math-medicine@1" in page.inner_text("#digest-results")

    # sign out: back to sign-in, pages closed again
    page.goto("/")
    page.click("#signout")
    page.wait_for_url("**/signin")
    page.goto("/compositions")
    assert "/signin" in page.url
    assert not w.dialogs
    assert not [c for c in w.console if c.startswith("error")], w.console
    page.context.close()


def test_digest_of_a_file_hashed_in_the_browser(browser: Browser, live: Live, tmp_path: Path) -> None:
    w = _page(browser, live)
    _sign_in(w.page, live.seeded.reader_key, "/digest")
    weights = tmp_path / "adapter_model.safetensors"
    # The bytes of acme/math@1 as the store holds them (downloaded through the product).
    from registry.service import download_version

    download_version(live.reg, "acme/math@1", tmp_path / "dl")
    shutil.copy(tmp_path / "dl" / "adapter_model.safetensors", weights)
    w.page.set_input_files("#hash-file", str(weights))
    w.page.wait_for_selector("#digest-results")
    assert w.page.input_value("#sha256") == live.seeded.math_sha256
    assert "acme/math@1" in w.page.inner_text("#digest-results")
    w.page.context.close()


def test_xss_probe_shows_text_and_runs_nothing(browser: Browser, live: Live) -> None:
    w = _page(browser, live)
    page = w.page
    _sign_in(page, live.seeded.reader_key)
    for path in ("/", "/?q=xss", "/adapters/evil/probe", "/adapters/evil/probe/versions/1"):
        page.goto(path)
        page.wait_for_load_state("load")
        assert page.evaluate("typeof window.__xss") == "undefined", path
    page.goto("/adapters/evil/probe")
    assert page.inner_text("#description") == XSS_DESCRIPTION
    tags = page.inner_text("#tags")
    assert XSS_TAG in tags and XSS_TAG_KEY in tags
    page.goto("/adapters/evil/probe/versions/1")
    card = page.inner_text("#model-card")  # the author's README.md: its HTML shown as text
    assert "<script>window.__xss='card'</script>" in card and "onerror" in card
    assert page.locator("#model-card script, #model-card img, #model-card a[href^='javascript']").count() == 0
    registry_card = page.inner_text("#registry-card")
    assert "window.__xss" in registry_card  # the description the registry's card repeats, as text
    assert page.locator("#registry-card script, #registry-card img").count() == 0
    assert not w.dialogs, w.dialogs
    # Nothing injected even reached the CSP (which would have blocked it and said so).
    assert not [c for c in w.console if "Content Security Policy" in c], w.console
    page.context.close()


def test_running_composition_updates_live(browser: Browser, live: Live) -> None:
    w = _page(browser, live)
    page = w.page
    _sign_in(page, live.seeded.reader_key, "/compositions")
    badge = page.locator(f"[data-poll='/compositions/{live.running_id}/status.json']")
    assert badge.inner_text() == "running"
    runs.fail(live.reg, live.running_id, "worker lost")
    page.wait_for_function(
        "id => document.querySelector(`[data-poll='/compositions/${id}/status.json'], "
        "tr .status-failed`)?.textContent === 'failed'",
        arg=live.running_id,
        timeout=15_000,
    )
    page.goto(f"/compositions/{live.running_id}")
    assert page.inner_text("#run-error") == "worker lost"
    page.context.close()


@pytest.mark.parametrize("viewport", [WIDE, NARROW], ids=["1280x800", "narrow-390"])
def test_screenshots(browser: Browser, live: Live, viewport: ViewportSize) -> None:
    w = _page(browser, live, viewport)
    page = w.page
    _sign_in(page, live.seeded.reader_key)
    tag = f"{viewport['width']}x{viewport['height']}"
    for name, path in (
        ("catalog", "/"),
        ("version", "/adapters/acme/math-medicine/versions/1"),
        ("lineage", "/adapters/acme/math-medicine/versions/1/lineage"),
        ("composition", f"/compositions/{live.seeded.composition_id}"),
    ):
        page.goto(path)
        page.wait_for_load_state("load")
        # Usable: nothing of the page frame wider than the viewport (tables and the graph scroll inside).
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} at {tag} overflows by {overflow}px"
        assert _shot(page, f"{name}-{tag}").stat().st_size > 5_000
    page.context.close()
