"""The web catalog through FastAPI's TestClient: auth and cookies, CSP, escaping, pages, 404s."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.web.session import COOKIE
from registry.service import Registry
from registry.service.admin.keys import create_key, revoke_key
from tests.web.conftest import sign_in
from tests.web.seed import XSS_DESCRIPTION, XSS_TAG, Seeded


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', html)
    assert match, "sign-out form without a token"
    return match.group(1)


def test_pages_need_sign_in_and_redirect_back(client: TestClient) -> None:
    r = client.get("/adapters/acme/math?x=1")
    assert r.status_code == 303
    assert r.headers["location"] == "/signin?next=%2Fadapters%2Facme%2Fmath%3Fx%3D1"
    assert client.get("/compositions").status_code == 303
    # The REST API keeps its own auth: a page session is not a bearer key.
    assert client.get("/v1/adapters").status_code == 401


def test_sign_in_sets_a_hardened_cookie_without_the_key(client: TestClient, seeded: Seeded) -> None:
    r = client.post("/signin", data={"key": seeded.reader_key, "next": "/adapters/acme/math"})
    assert r.status_code == 303 and r.headers["location"] == "/adapters/acme/math"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http on loopback (PEMREG_SESSION_COOKIE_SECURE forces it)
    assert seeded.reader_key not in cookie and seeded.reader_key.split("_")[-1] not in cookie
    page = client.get("/adapters/acme/math")
    assert page.status_code == 200 and "web-reader" in page.text


def test_secure_cookie_behind_a_tls_proxy(web_reg: Registry, seeded: Seeded) -> None:
    settings = web_reg.settings.model_copy(update={"session_cookie_secure": True})
    with TestClient(create_app(settings), follow_redirects=False) as c:
        r = c.post("/signin", data={"key": seeded.reader_key})
        assert r.status_code == 303 and "; Secure" in r.headers["set-cookie"]


def test_bad_key_and_offsite_next(client: TestClient, seeded: Seeded) -> None:
    r = client.post("/signin", data={"key": "pemreg_dead_beef", "next": "/"})
    assert r.status_code == 401 and "invalid" in r.text and COOKIE not in r.headers.get("set-cookie", "")
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example"):
        r = client.post("/signin", data={"key": seeded.reader_key, "next": target})
        assert r.headers["location"] == "/"


def test_cross_site_sign_in_refused(client: TestClient, seeded: Seeded) -> None:
    r = client.post("/signin", data={"key": seeded.reader_key}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "set-cookie" not in r.headers


def test_forged_or_tampered_cookie_is_ignored(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, seeded.reader_key)
    good = client.cookies[COOKIE]
    payload, mac = good.split(".")
    client.cookies.clear()
    client.cookies.set(COOKIE, payload + "." + mac[:-2] + ("AA" if not mac.endswith("AA") else "BB"))
    assert client.get("/").status_code == 303
    client.cookies.clear()
    client.cookies.set(COOKIE, "eyJrIjoid2ViLXdyaXRlciJ9.x")
    assert client.get("/").status_code == 303


def test_revoked_key_loses_its_session(web_reg: Registry, client: TestClient) -> None:
    key = create_key(web_reg, "short-lived", "reader")
    sign_in(client, key)
    assert client.get("/").status_code == 200
    revoke_key(web_reg, "short-lived")
    assert client.get("/").status_code == 303


def test_sign_out_needs_the_token(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, seeded.reader_key)
    token = _csrf(client.get("/").text)
    assert client.post("/signout", data={"csrf": "forged"}).status_code == 403
    assert client.post("/signout", data={}).status_code == 403
    assert client.get("/").status_code == 200  # still signed in
    r = client.post("/signout", data={"csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    assert f'{COOKIE}=""' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert client.get("/").status_code == 303


def test_public_read(web_reg: Registry, seeded: Seeded) -> None:
    settings = web_reg.settings.model_copy(update={"public_read": True})
    with TestClient(create_app(settings), follow_redirects=False) as anon:
        r = anon.get("/")
        assert r.status_code == 200 and "acme/math" in r.text and "anonymous read" in r.text
        assert anon.get("/v1/adapters").status_code == 401  # REST still needs a key


def test_csp_and_security_headers_on_pages(client: TestClient, seeded: Seeded) -> None:
    for path in ("/signin", "/"):
        if path == "/":
            sign_in(client, seeded.reader_key)
        r = client.get(path)
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "<script>" not in r.text  # scripts come from /static only
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").headers["content-type"].startswith("text/css")


def test_user_strings_are_escaped(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, seeded.reader_key)
    for path in ("/", "/adapters/evil/probe", "/adapters/evil/probe/versions/1", "/?q=adapter"):
        html = client.get(path).text
        assert "<script>window" not in html and "<img src=x" not in html, path
    html = client.get("/adapters/evil/probe").text
    assert "&lt;script&gt;window.__xss=&#34;desc&#34;&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=" in html
    # The version page renders the model card (which repeats the description) as escaped Markdown.
    card = client.get("/adapters/evil/probe/versions/1").text
    assert XSS_DESCRIPTION not in card and XSS_TAG not in card
    assert 'id="model-card"' in card


def test_catalog_search_filters_and_keyset_pages(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, seeded.reader_key)
    html = client.get("/").text
    for name in ("acme/math", "acme/medicine", "acme/math-medicine", "evil/probe"):
        assert f">{name}</a>" in html
    assert "candidate→1" in html  # the alias the composition set
    assert ">acme/medicine</a>" not in client.get("/?q=arith").text
    assert ">acme/math</a>" in client.get("/?q=arith").text
    assert ">acme/math</a>" not in client.get("/?tag=tier=silver").text
    assert ">acme/medicine</a>" in client.get("/?tag=tier:silver").text
    assert ">acme/math</a>" in client.get("/?task=math&pem_type=lora").text
    assert "No adapter matches" in client.get("/?pem_type=lora&task=nothing").text
    r = client.get("/?pem_type=bogus")
    assert r.status_code == 422 and "pem_type" in r.text
    assert client.get("/?page_token=garbage!").status_code == 422
    assert client.get("/?page_token=garbage").status_code == 404  # well-formed, but no page starts there


def test_keyset_next_page_link(web_reg: Registry, client: TestClient, seeded: Seeded) -> None:
    import api.web.routes as routes

    sign_in(client, seeded.reader_key)
    old = routes.PAGE_SIZE
    routes.PAGE_SIZE = 2
    try:
        first = client.get("/").text
        link = re.search(r'href="(/\?page_token=[^"]+)" id="next-page"', first)
        assert link, "no next page link"
        second = client.get(link.group(1).replace("&amp;", "&")).text
    finally:
        routes.PAGE_SIZE = old
    names = re.findall(r'class="name" href="/adapters/([^"]+)"', first + second)
    assert names == ["acme/math", "acme/math-medicine", "acme/medicine", "evil/probe"]


def test_version_page_shows_files_lineage_metrics_provenance(
    client: TestClient, web_reg: Registry, seeded: Seeded
) -> None:
    sign_in(client, seeded.reader_key)
    html = client.get("/adapters/acme/math-medicine/versions/1").text
    assert seeded.weights_sha256 in html  # files with sha256
    assert "adapter_model.safetensors" in html and "provenance.json" in html and "README.md" in html
    assert re.search(r'acme/math@1</a></td><td>linear</td><td class="num">\+0.7<', html)
    assert re.search(r'acme/medicine@1</a></td><td>linear</td><td class="num">\+0.3<', html)
    assert f'/compositions/{seeded.composition_id}"' in html
    # metrics with the parents' values beside them
    assert "math-ppl" in html and ">7.25<" in html and ">6.5<" in html and ">11<" in html
    assert 'id="provenance"' in html and "Interference" in html and "Environment" in html
    assert "--lora-modules acme/math-medicine@" in html  # serving refs
    assert 'data-copy="acme/math-medicine@1"' in html
    # by alias and by digest prefix too
    assert client.get("/adapters/acme/math-medicine/versions/candidate").status_code == 200
    assert (
        client.get(f"/adapters/acme/math-medicine/versions/sha256:{seeded.weights_sha256[:12]}").status_code
        == 200
    )


def test_download_streams_the_recorded_bytes(client: TestClient, seeded: Seeded, web_reg: Registry) -> None:
    import hashlib

    sign_in(client, seeded.reader_key)
    r = client.get("/adapters/acme/math-medicine/versions/1/download")
    assert r.status_code == 200
    assert hashlib.sha256(r.content).hexdigest() == seeded.weights_sha256
    assert client.get("/adapters/acme/math-medicine/versions/1/download?file=nope").status_code == 404


def test_lineage_graph_page(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, seeded.reader_key)
    html = client.get("/adapters/acme/math-medicine/versions/1/lineage").text
    assert 'data-parent="acme/math@1" data-child="acme/math-medicine@1"' in html
    assert 'data-parent="acme/medicine@1" data-child="acme/math-medicine@1"' in html
    assert "linear +0.7" in html and "linear +0.3" in html
    assert 'href="/adapters/acme/math/versions/1"' in html
    down = client.get("/adapters/acme/math/versions/1/lineage").text
    assert 'data-child="acme/math-medicine@1"' in down and "1 descendant" in down
    assert client.get("/adapters/acme/math/versions/1/lineage?depth=0").status_code == 422


def test_digest_search(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, seeded.reader_key)
    html = client.get(f"/digest?sha256={seeded.weights_sha256}").text
    assert 'href="/adapters/acme/math-medicine/versions/1"' in html and "linear" in html
    none = client.get("/digest?sha256=" + "0" * 64)
    assert none.status_code == 200 and "is not a file of any registered object" in none.text
    bad = client.get("/digest?sha256=xyz")
    assert bad.status_code == 422 and "64 hex digits" in bad.text


def test_compositions_pages(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, seeded.reader_key)
    html = client.get("/compositions").text
    assert seeded.composition_id[:8] in html and "succeeded" in html
    page = client.get(f"/compositions/{seeded.composition_id}").text
    assert 'id="heatmap"' in page and "acme/math@1" in page and "+0.7" in page
    assert "http://127.0.0.1:4200/runs/flow-run/00000000-0000-4000-8000-000000000001" in page
    status = client.get(f"/compositions/{seeded.composition_id}/status.json").json()
    assert status == {"id": seeded.composition_id, "status": "succeeded", "error": None, "terminal": True}
    assert client.get("/compositions?status=bogus").status_code == 422


def test_compositions_list_marks_cache_hits(web_reg: Registry, client: TestClient, seeded: Seeded) -> None:
    """The same spec again is answered from the catalog: the list says so on that row only."""
    from registry.service.compositions import runs
    from registry.spec import load_spec
    from tests.web.seed import SPEC

    sign_in(client, seeded.reader_key)
    hit = runs.start(web_reg, load_spec(SPEC), "api", runner="background")
    assert hit.cache_hit
    rows = {
        row.split("<code>")[1][:8]: row
        for row in client.get("/compositions").text.split("<tbody>")[1].split("</tr>")
        if "<code>" in row
    }
    assert 'class="badge cache-hit"' in rows[hit.id[:8]]
    assert "cache-hit" not in rows[seeded.composition_id[:8]]


def test_gates_rechecked_on_the_composition_page(
    web_reg: Registry, client: TestClient, seeded: Seeded
) -> None:
    from registry.service.compositions import runs
    from registry.service.compositions.inputs import resolve_inputs
    from registry.service.compositions.status import RunStatus
    from registry.spec import load_spec
    from tests.web.seed import SPEC

    sign_in(client, seeded.reader_key)
    gates = client.get(f"/compositions/{seeded.composition_id}").text
    gates = gates[gates.index('id="gates"') :]
    # 7.25 <= 12 and 7.25 <= 6.5 * 1.2 (acme/math's recorded math-ppl): both hold
    assert gates.count('status-succeeded">passed') == 2 and "failed" not in gates.split("</table>")[0]
    spec = load_spec(SPEC)
    run = runs.create(web_reg, spec, resolve_inputs(web_reg, spec), "api")
    runs.transition(web_reg, run.id, RunStatus.RUNNING)
    runs.reject(web_reg, run.id, {"math-ppl": 13.0}, ["math-ppl = 13 > max 12"])
    html = client.get(f"/compositions/{run.id}").text
    table = html[html.index('id="gates"') :].split("</table>")[0]
    assert "math-ppl = 13 &gt; max 12" in table
    assert "regresses more than 20% vs acme/math (6.5; limit 7.8)" in table
    pending = runs.create(web_reg, spec, resolve_inputs(web_reg, spec), "api")
    table = client.get(f"/compositions/{pending.id}").text.split('id="gates"')[1].split("</table>")[0]
    assert table.count("not checked") == 2


def test_missing_objects_answer_404_pages(client: TestClient, seeded: Seeded) -> None:
    sign_in(client, seeded.reader_key)
    for path in (
        "/adapters/acme/nope",
        "/adapters/acme/math/versions/9",
        "/adapters/acme/math/versions/9/lineage",
        "/compositions/00000000-0000-0000-0000-000000000000",
    ):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.headers["content-type"].startswith("text/html")
        assert "content-security-policy" in r.headers
        assert 'id="who-name">key:web-reader<' in r.text  # still shows who is signed in
    assert client.get("/adapters/BAD NAME/x").status_code == 422


def test_session_secret_is_generated_once(tmp_path: Path) -> None:
    from api.web.session import load_secret
    from registry.settings import Settings

    settings = Settings(home=tmp_path)
    first = load_secret(settings)
    assert load_secret(settings) == first and len(first) >= 32
    assert (tmp_path / "web-session-secret").stat().st_mode & 0o777 == 0o600
    assert load_secret(Settings(home=tmp_path, session_secret="x" * 40)) == b"x" * 40


def test_version_status_badges_and_status_filter(
    web_reg: Registry, client: TestClient, seeded: Seeded
) -> None:
    """A deprecated version shows its badge on the adapter page; the catalog's status filter keeps the
    adapters with a version in that status."""
    from registry.service.catalog import lifecycle

    sign_in(client, seeded.reader_key)
    before = client.get("/adapters/acme/math").text.split('id="versions"')[1]
    assert 'status-active">active' in before and "status-deprecated" not in before
    lifecycle.set_status(web_reg, "acme/math@1", "deprecate")
    try:
        after = client.get("/adapters/acme/math").text.split('id="versions"')[1]
        assert '<span class="badge status-deprecated">deprecated</span>' in after
        listed = client.get("/?status=deprecated").text
        assert ">acme/math</a>" in listed and ">acme/medicine</a>" not in listed
        active = client.get("/?status=active").text
        assert ">acme/math</a>" not in active and ">acme/medicine</a>" in active
        assert client.get("/?status=bogus").status_code == 422
    finally:
        lifecycle.set_status(web_reg, "acme/math@1", "restore")


def test_parents_metrics_only_beside_the_same_measurement(
    web_reg: Registry, client: TestClient, seeded: Seeded
) -> None:
    from registry.service.catalog.evaluations import record

    record(
        web_reg,
        "acme/medicine@1",
        name="math-ppl",
        metric="perplexity",
        dataset_uri="file:///data/other.jsonl",
        dataset_sha256="e" * 64,
        value=99.0,
        composition_id=None,
    )
    sign_in(client, seeded.reader_key)
    metrics = client.get("/adapters/acme/math-medicine/versions/1").text.split('id="metrics"')[1]
    metrics = metrics.split("</div>")[0]
    assert ">11<" in metrics and ">99<" not in metrics


def test_model_card_markdown_is_rendered_without_html_or_unsafe_links() -> None:
    from api.web.render import markdown

    html = str(
        markdown(
            "---\nbase_model: x\n---\n# Card\n| a | b |\n|---|---|\n| 1 | 2 |\n\n"
            "<script>alert(1)</script> <img src=x onerror=alert(1)> [bad](javascript:alert(1)) "
            "[ok](https://example.org/x)"
        )
    )
    assert "<h1>Card</h1>" in html and "<table>" in html and "base_model" not in html
    assert "<script" not in html and "<img" not in html and 'href="javascript' not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<a href="https://example.org/x">ok</a>' in html
