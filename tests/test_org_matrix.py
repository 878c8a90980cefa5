"""Every REST route and web page x no grant / reader / writer / maintainer / admin x an internal and a
private namespace, on PostgreSQL + SeaweedFS, one app in-process, the catalog seeded once.

- `pub` is internal, `sec` private; both protect `prod` and `release-*`; keys r, w, m hold reader,
  writer, maintainer grants in both and only the global reader role; `none` is a global *writer* key
  with no grant (what every writer key could do to every namespace before this change); `admin` is
  a global admin.
- Each route is called as each principal in each namespace and must answer as the contract says:
  success when the principal's role there reaches what the route needs, 403 when it sees the namespace
  but its role falls short, 404 - byte for byte what a missing namespace answers - when it cannot see
  it. A refused write is one audit event naming who, what and why.
- Listings, search, lineage, audit, the digest lookup and the web pages are read through as `none`:
  nothing of `sec` appears by name, count or page token.
- Webhooks: each namespace has one; only its maintainers (and admins) create, see and manage them, and
  anyone else gets 404 for one, as for a missing webhook (a reader or writer of the namespace too).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from registry import service
from registry.catalog import models as m
from registry.catalog.db import transaction
from registry.service import Registry
from registry.service.access.namespaces import create_namespace, set_grant
from registry.service.admin.keys import create_key
from registry.service.catalog.aliases import set_alias
from registry.service.catalog.resolve import resolve_version
from registry.service.compositions import runs
from registry.service.compositions.status import RunStatus
from registry.service.events import webhooks
from registry.spec import load_spec
from tests.factories import make_ia3, make_lora
from tests.pg_service import truncate_all
from tests.s3_service import S3Service
from tests.test_api_common import upload_files
from tests.webhook_receiver import Receiver

ROLES = ("none", "reader", "writer", "maintainer", "admin")
KEYS = {"none": ("outsider", "writer"), "reader": ("r", "reader"), "writer": ("w", "reader")}
KEYS |= {"maintainer": ("m", "reader"), "admin": ("boss", "admin")}
RANK = {None: 0, "reader": 1, "writer": 2, "maintainer": 3, "admin": 4}
NAMESPACES = ("pub", "sec")


@dataclass
class World:
    reg: Registry
    app: Any
    secrets: dict[str, str]
    web: dict[str, TestClient]
    dirs: dict[str, Path]
    hook_url: str = ""  # the loopback receiver (an allowed webhook host)
    hooks: dict[str, str] = field(default_factory=dict)  # ns -> the id of its webhook
    hook_events: dict[str, str] = field(default_factory=dict)  # ns -> an event delivered to it
    runs: dict[str, str] = field(default_factory=dict)  # label -> composition id
    sha: dict[str, str] = field(default_factory=dict)  # ns/name@v -> sha256
    counter: list[int] = field(default_factory=lambda: [0])

    def h(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[role]}"}

    def principal(self, role: str) -> str:
        return f"key:{KEYS[role][0]}"

    def fresh(self) -> int:
        self.counter[0] += 1
        return self.counter[0]


def _version(reg: Registry, ref: str) -> m.AdapterVersion:
    with reg.sessions() as session:
        return resolve_version(session, ref, access=reg.acting)


def _edge(reg: Registry, parent: str, child: str, composition_id: str | None) -> None:
    with transaction(reg.sessions) as session:
        p, c = (resolve_version(session, r, access=reg.acting) for r in (parent, child))
        session.add(
            m.LineageEdge(
                parent_version_id=p.id,
                child_version_id=c.id,
                operator="linear",
                weight=0.5,
                composition_id=composition_id,
            )
        )


def _cached_run(reg: Registry, spec_text: str, output: str) -> str:
    """A succeeded run of this spec with `output` as its registered result: the next POST of the same spec
    is answered from the catalog (a cache hit), so routes can succeed without running a flow."""
    spec = load_spec(spec_text)
    inputs, _ = runs.prepare(reg, spec)
    run = runs.create(reg, spec, inputs, "api")
    out = _version(reg, output)
    runs.transition(reg, run.id, RunStatus.RUNNING)
    runs.transition(reg, run.id, RunStatus.SUCCEEDED, output_version_id=out.id)
    return run.id


@pytest.fixture(scope="module")
def world(
    pg_url: str,
    s3_service: S3Service,
    tmp_path_factory: pytest.TempPathFactory,
    adapter_dirs: dict[str, Path],
    receiver: Receiver,
) -> Iterator[World]:
    settings = s3_service.settings(
        home=tmp_path_factory.mktemp("home"),
        database_url=pg_url,
        store_url=f"s3://{s3_service.bucket}/{uuid.uuid4().hex}",
        principal="seeder",
    ).model_copy(update={"webhook_allowed_hosts": f"127.0.0.1:{receiver.port}"})
    reg = Registry(settings)
    reg.store.ensure_ready()
    secrets = {role: create_key(reg, name, global_role) for role, (name, global_role) in KEYS.items()}
    made = tmp_path_factory.mktemp("org-adapters")
    # Each namespace its own bytes: a digest lookup must not find the other namespace's copy.
    own = {
        "pub": [
            adapter_dirs["lora"],
            adapter_dirs["lora2"],
            make_lora(made / "p3", seed=13),
            make_lora(made / "p4", seed=14),
        ],
        "sec": [make_lora(made / f"s{i}", seed=20 + i) for i in range(4)],
    }
    for ns, visibility in (("pub", "internal"), ("sec", "private")):
        create_namespace(reg, ns, visibility=visibility, protected_aliases=["prod", "release-*"])
        for role in ("reader", "writer", "maintainer"):
            set_grant(reg, ns, f"key:{KEYS[role][0]}", role)
        first, second, third, fourth = own[ns]
        service.register_adapter(reg, first, f"{ns}/a")
        service.register_adapter(reg, second, f"{ns}/b")
        service.register_adapter(reg, second, f"{ns}/a")  # a@2
        service.register_adapter(reg, third, f"{ns}/cached")
        service.register_adapter(reg, fourth, f"{ns}/cached")
        set_alias(reg, f"{ns}/a@1", "prod")
        set_alias(reg, f"{ns}/a@1", "staging")
    # Across namespaces: a public child of a secret parent, a secret child of a public parent.
    service.register_adapter(reg, adapter_dirs["ia3"], "pub/child")
    service.register_adapter(reg, make_ia3(made / "sec-child", seed=30), "sec/child")
    world = World(reg, None, secrets, {}, {**adapter_dirs, "sec-lora": own["sec"][0]}, receiver.url)
    for ns in NAMESPACES:  # as the operator (an admin); the maintainers manage them as well
        hook = webhooks.create_webhook(reg, url=receiver.url, namespace=ns)
        world.hooks[ns] = hook.id
        world.hook_events[ns] = webhooks.ping(reg, hook.id).event_id
    for ns in NAMESPACES:
        world.runs[ns] = _cached_run(
            reg, f"name: {ns}/cached\nexpression: '{ns}/a@1 + {ns}/b@1'\n", f"{ns}/cached@1"
        )
        world.runs[f"{ns}-prod"] = _cached_run(
            reg,
            f"name: {ns}/cached\nexpression: '{ns}/a@1 - {ns}/b@1'\noutput:\n  aliases: [prod]\n",
            f"{ns}/cached@2",
        )
    world.runs["cross"] = _cached_run(
        reg, "name: pub/mixed\nexpression: 'sec/a@1 + pub/a@1'\n", "pub/child@1"
    )
    _edge(reg, "sec/a@1", "pub/child@1", world.runs["cross"])
    _edge(reg, "pub/a@1", "pub/child@1", world.runs["cross"])
    _edge(reg, "pub/a@1", "sec/child@1", None)
    for ref in ("pub/a@1", "sec/a@1", "pub/child@1", "sec/child@1"):
        world.sha[ref] = _version(reg, ref).sha256
    world.app = create_app(settings)
    for role in ROLES:
        client = TestClient(world.app)
        assert (
            client.post(
                "/signin", data={"key": secrets[role], "next": "/"}, follow_redirects=False
            ).status_code
            == 303
        )
        world.web[role] = client
    yield world
    truncate_all(pg_url)


def _api(world: World) -> TestClient:
    return world.web["admin"]  # any client: REST calls carry their own bearer header, no cookie needed


# ---- the route table ---------------------------------------------------------------------------------

Build = Callable[[World, str, str], dict[str, Any]]  # (world, namespace, role) -> request kwargs


@dataclass(frozen=True)
class Route:
    id: str
    method: str
    path: Callable[[World, str], str]
    needs: str  # reader | writer | maintainer (in the namespace) | admin (global)
    ok: tuple[int, ...] = (200,)
    kwargs: Build = lambda w, ns, role: {}
    web: bool = False  # a page: cookie session, HTML answers
    write: bool = False
    unseen: int = 404  # what a principal that cannot see the namespace gets
    short: int = 403  # what one that sees it, with a role below `needs`, gets


def _spec(text: str) -> Build:
    return lambda w, ns, role: {
        "content": text.replace("NS", ns).encode(),
        "headers": {"Content-Type": "application/yaml"},
    }


def _fresh_alias(w: World, ns: str, role: str, alias: str) -> dict[str, Any]:
    set_alias(w.reg, f"{ns}/a@1", alias)  # as the operator: there is something to delete
    return {}


def _deletable(w: World, ns: str) -> str:
    name = f"{ns}/tmp-{w.fresh()}"
    service.register_adapter(w.reg, w.dirs["lora"], name)
    return f"/v1/adapters/{name}/versions/1"


def _deletable_hook(w: World, ns: str) -> str:
    return f"/v1/webhooks/{webhooks.create_webhook(w.reg, url=w.hook_url, namespace=ns).id}"


def _hook(suffix: str = "") -> Callable[[World, str], str]:
    return lambda w, ns: f"/v1/webhooks/{w.hooks[ns]}{suffix}"


def _grant_target(w: World, ns: str, role: str) -> dict[str, Any]:
    set_grant(w.reg, ns, "group:temp", "reader")
    return {}


V = "/v1/adapters/{ns}/a/versions/1"
ROUTES: list[Route] = [
    Route("adapter.show", "GET", lambda w, ns: f"/v1/adapters/{ns}/a", "reader"),
    Route("version.get", "GET", lambda w, ns: V.format(ns=ns), "reader"),
    Route("version.by-alias", "GET", lambda w, ns: f"/v1/adapters/{ns}/a/versions/prod", "reader"),
    Route(
        "version.by-digest",
        "GET",
        lambda w, ns: f"/v1/adapters/{ns}/a/versions/sha256:{w.sha[f'{ns}/a@1'][:12]}",
        "reader",
    ),
    Route(
        "version.manifest",
        "GET",
        lambda w, ns: V.format(ns=ns) + "/download",
        "reader",
        kwargs=lambda w, ns, r: {"params": {"redirect": "false"}},
    ),
    Route("version.download", "GET", lambda w, ns: V.format(ns=ns) + "/download", "reader", ok=(307,)),
    Route(
        "version.lineage",
        "GET",
        lambda w, ns: V.format(ns=ns) + "/lineage",
        "reader",
        kwargs=lambda w, ns, r: {"params": {"direction": "down"}},
    ),
    Route("version.serving", "GET", lambda w, ns: V.format(ns=ns) + "/serving", "reader"),
    Route("artifact", "GET", lambda w, ns: f"/v1/artifacts/{w.sha[f'{ns}/a@1']}", "reader"),
    Route("composition.get", "GET", lambda w, ns: f"/v1/compositions/{w.runs[ns]}", "reader"),
    Route("composition.prefix", "GET", lambda w, ns: f"/v1/compositions/{w.runs[ns][:8]}", "reader"),
    Route("namespace.get", "GET", lambda w, ns: f"/v1/namespaces/{ns}", "reader"),
    Route("namespace.grants", "GET", lambda w, ns: f"/v1/namespaces/{ns}/grants", "reader"),
    Route(
        "register",
        "POST",
        lambda w, ns: "/v1/adapters",
        "writer",
        ok=(200, 201),
        write=True,
        unseen=403,
        kwargs=lambda w, ns, r: {
            "files": upload_files(w.dirs["lora" if ns == "pub" else "sec-lora"]),
            "data": {"name": f"{ns}/a"},
        },
    ),
    Route(
        "alias.set",
        "PUT",
        lambda w, ns: f"/v1/adapters/{ns}/a/aliases/staging",
        "writer",
        write=True,
        kwargs=lambda w, ns, r: {"json": {"version": 1}},
    ),
    Route(
        "alias.set-protected",
        "PUT",
        lambda w, ns: f"/v1/adapters/{ns}/a/aliases/release-2",
        "maintainer",
        write=True,
        kwargs=lambda w, ns, r: {"json": {"version": 1}},
    ),
    Route(
        "alias.delete",
        "DELETE",
        lambda w, ns: f"/v1/adapters/{ns}/a/aliases/canary",
        "writer",
        write=True,
        kwargs=lambda w, ns, r: _fresh_alias(w, ns, r, "canary"),
    ),
    Route(
        "alias.delete-protected",
        "DELETE",
        lambda w, ns: f"/v1/adapters/{ns}/a/aliases/release-9",
        "maintainer",
        write=True,
        kwargs=lambda w, ns, r: _fresh_alias(w, ns, r, "release-9"),
    ),
    Route(
        "adapter.patch",
        "PATCH",
        lambda w, ns: f"/v1/adapters/{ns}/a",
        "writer",
        write=True,
        kwargs=lambda w, ns, r: {"json": {"description": "the a adapter"}},
    ),
    Route("version.deprecate", "POST", lambda w, ns: V.format(ns=ns) + ":deprecate", "writer", write=True),
    Route("version.restore", "POST", lambda w, ns: V.format(ns=ns) + ":restore", "writer", write=True),
    # A fresh version each time: archiving `a@1` would hide it from the listings other rows read.
    Route("version.archive", "POST", lambda w, ns: _deletable(w, ns) + ":archive", "writer", write=True),
    Route("version.delete", "DELETE", lambda w, ns: _deletable(w, ns), "maintainer", write=True),
    Route(
        "version.undelete",
        "POST",
        lambda w, ns: V.format(ns=ns) + ":undelete",
        "maintainer",
        ok=(409,),  # allowed, and refused because it is not deleted
        write=True,
    ),
    Route(
        "adapter.delete-all",
        "DELETE",
        lambda w, ns: f"/v1/adapters/{ns}/never-registered",
        "maintainer",
        ok=(404,),  # allowed, and nothing to delete (so a 404 here is no refusal to audit)
        kwargs=lambda w, ns, r: {"params": {"all_versions": "true"}},
    ),
    Route(
        "compose.validate",
        "POST",
        lambda w, ns: "/v1/compositions:validate",
        "writer",
        write=True,
        kwargs=_spec("name: NS/cached\nexpression: 'NS/a@1 + NS/b@1'\n"),
    ),
    Route(
        "compose",
        "POST",
        lambda w, ns: "/v1/compositions",
        "writer",
        ok=(202,),
        write=True,
        kwargs=_spec("name: NS/cached\nexpression: 'NS/a@1 + NS/b@1'\n"),
    ),
    Route(
        "compose.protected-alias",
        "POST",
        lambda w, ns: "/v1/compositions",
        "maintainer",
        ok=(202,),
        write=True,
        kwargs=_spec("name: NS/cached\nexpression: 'NS/a@1 - NS/b@1'\noutput:\n  aliases: [prod]\n"),
    ),
    Route(
        "namespace.patch",
        "PATCH",
        lambda w, ns: f"/v1/namespaces/{ns}",
        "maintainer",
        write=True,
        kwargs=lambda w, ns, r: {"json": {"protected_aliases": ["prod", "release-*"]}},
    ),
    Route(
        "grant.set",
        "PUT",
        lambda w, ns: f"/v1/namespaces/{ns}/grants/group:temp",
        "maintainer",
        write=True,
        kwargs=lambda w, ns, r: {"json": {"role": "reader"}},
    ),
    Route(
        "grant.revoke",
        "DELETE",
        lambda w, ns: f"/v1/namespaces/{ns}/grants/group:temp",
        "maintainer",
        ok=(204,),
        write=True,
        kwargs=_grant_target,
    ),
    Route(
        "namespace.create",
        "POST",
        lambda w, ns: "/v1/namespaces",
        "admin",
        ok=(201,),
        write=True,
        kwargs=lambda w, ns, r: {"json": {"name": f"{ns}-new-{w.fresh()}"}},
    ),
    # Webhooks: a namespace's maintainers manage its webhooks; to everyone else one is missing (404).
    Route(
        "webhook.create",
        "POST",
        lambda w, ns: "/v1/webhooks",
        "maintainer",
        ok=(201,),
        write=True,
        kwargs=lambda w, ns, r: {"json": {"url": w.hook_url, "namespace": ns, "events": ["alias.moved"]}},
    ),
    Route("webhook.show", "GET", _hook(), "maintainer", short=404),
    Route(
        "webhook.patch",
        "PATCH",
        _hook(),
        "maintainer",
        short=404,
        write=True,
        kwargs=lambda w, ns, r: {"json": {"description": f"edited by {r}"}},
    ),
    Route("webhook.deliveries", "GET", _hook("/deliveries"), "maintainer", short=404),
    Route(
        "webhook.delivery",
        "GET",
        lambda w, ns: f"/v1/webhooks/{w.hooks[ns]}/deliveries/{w.hook_events[ns]}",
        "maintainer",
        short=404,
    ),
    Route("webhook.ping", "POST", _hook(":ping"), "maintainer", ok=(202,), short=404, write=True),
    Route("webhook.rotate", "POST", _hook(":rotate-secret"), "maintainer", short=404, write=True),
    Route(
        "webhook.redeliver",
        "POST",
        lambda w, ns: f"/v1/webhooks/{w.hooks[ns]}/deliveries/{w.hook_events[ns]}:redeliver",
        "maintainer",
        ok=(202,),
        short=404,
        write=True,
    ),
    Route(
        "webhook.delete",
        "DELETE",
        lambda w, ns: _deletable_hook(w, ns),
        "maintainer",
        ok=(204,),
        short=404,
        write=True,
    ),
    # Web pages (cookie sessions): the same policy, HTML answers.
    Route("web.adapter", "GET", lambda w, ns: f"/adapters/{ns}/a", "reader", web=True),
    Route("web.version", "GET", lambda w, ns: f"/adapters/{ns}/a/versions/1", "reader", web=True),
    Route("web.lineage", "GET", lambda w, ns: f"/adapters/{ns}/a/versions/1/lineage", "reader", web=True),
    Route(
        "web.download",
        "GET",
        lambda w, ns: f"/adapters/{ns}/a/versions/1/download",
        "reader",
        ok=(307,),
        web=True,
    ),
    Route("web.composition", "GET", lambda w, ns: f"/compositions/{w.runs[ns]}", "reader", web=True),
    Route(
        "web.composition-status",
        "GET",
        lambda w, ns: f"/compositions/{w.runs[ns]}/status.json",
        "reader",
        web=True,
    ),
]


def _expected_role(role: str, ns: str) -> str | None:
    if role == "admin":
        return "admin"
    if role == "none":
        return "reader" if ns == "pub" else None  # internal and owned: read-only without a grant
    return role


def _expected(route: Route, role: str, ns: str) -> int | tuple[int, ...]:
    if route.needs == "admin":
        return route.ok if role == "admin" else 403
    have = _expected_role(role, ns)
    if have is None:
        return route.unseen
    return route.ok if RANK[have] >= RANK[route.needs] else route.short


def _call(world: World, route: Route, ns: str, role: str) -> Any:
    path = route.path(world, ns)
    kwargs = route.kwargs(world, ns, role)
    if route.web:
        return world.web[role].request(route.method, path, follow_redirects=False, **kwargs)
    headers = {**world.h(role), **kwargs.pop("headers", {})}
    return _api(world).request(route.method, path, headers=headers, follow_redirects=False, **kwargs)


def _newest_event(world: World) -> m.AuditEvent | None:
    with world.reg.sessions() as session:
        return session.scalars(select(m.AuditEvent).order_by(m.AuditEvent.id.desc()).limit(1)).first()


@pytest.mark.postgres
@pytest.mark.s3
@pytest.mark.parametrize("ns", NAMESPACES)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("route", ROUTES, ids=[r.id for r in ROUTES])
def test_route_matrix(world: World, route: Route, role: str, ns: str) -> None:
    expected = _expected(route, role, ns)
    before = _newest_event(world)
    r = _call(world, route, ns, role)
    allowed = expected if isinstance(expected, tuple) else (expected,)
    assert r.status_code in allowed, f"{route.id} as {role} in {ns}: {r.status_code} {r.text[:300]}"
    if r.status_code == 404:
        # Said as for a missing object (test_hidden_404_is_the_missing_404), nothing of its content.
        assert "sec/b" not in r.text and world.sha["sec/child@1"] not in r.text
    if role == "none" and ns == "pub":
        assert "sec/" not in r.text and '"sec"' not in r.text, f"{route.id} leaks sec to an outsider"
    if route.write and r.status_code in (403, 404):
        event = _newest_event(world)
        assert event is not None and (before is None or event.id > before.id), "refused write not audited"
        assert (event.action, event.actor) == ("refused", world.principal(role))
        assert event.details["why"] and event.details["needs"]
        if ns == "sec" and role == "none":
            assert event.namespace in ("sec", None)  # readable only by sec's members (and admins)


def test_hidden_404_is_the_missing_404(world: World) -> None:
    """A private object read by an outsider answers exactly as an object that does not exist."""
    for path in (
        "/v1/adapters/{ns}/a",
        V,
        "/v1/adapters/{ns}/a/versions/prod/lineage",
        "/v1/namespaces/{ns}",
    ):
        hidden = _api(world).get(path.format(ns="sec"), headers=world.h("none"))
        missing = _api(world).get(path.format(ns="zzz"), headers=world.h("none"))
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["detail"].replace("sec", "zzz") == missing.json()["detail"]
    hidden = _api(world).get(f"/v1/artifacts/{world.sha['sec/a@1']}", headers=world.h("none"))
    missing = _api(world).get(f"/v1/artifacts/{'0' * 64}", headers=world.h("none"))
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace(world.sha["sec/a@1"], "0" * 64) == missing.json()["detail"]
    hidden_run = _api(world).get(f"/v1/compositions/{world.runs['cross']}", headers=world.h("none"))
    assert hidden_run.status_code == 404  # its spec names sec/a
    absent = str(uuid.uuid4())
    for role in ("none", "reader", "writer"):  # a webhook: missing to all but maintainers and admins
        for ns in NAMESPACES:
            hidden = _api(world).get(f"/v1/webhooks/{world.hooks[ns]}", headers=world.h(role))
            missing = _api(world).get(f"/v1/webhooks/{absent}", headers=world.h(role))
            assert hidden.status_code == missing.status_code == 404
            assert hidden.json()["detail"].replace(world.hooks[ns], absent) == missing.json()["detail"]


# ---- listings, search, audit, lineage: nothing of sec by name, count or token ------------------------


def _all_pages(world: World, role: str, **params: Any) -> tuple[list[str], list[str]]:
    names, tokens, token = [], [], None
    while True:
        query = {**params, "limit": 1, **({"page_token": token} if token else {})}
        page = _api(world).get("/v1/adapters", params=query, headers=world.h(role)).json()
        names += [a["name"] for a in page["items"]]
        token = page["next_page_token"]
        if not token:
            return names, tokens
        tokens.append(token)


def _decoded(token: str) -> str:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()


@pytest.mark.parametrize("role", ROLES)
def test_listings_show_only_what_the_role_reads(world: World, role: str) -> None:
    sees_sec = role != "none"
    for params in ({}, {"q": "a"}, {"pem_type": "lora"}):
        names, tokens = _all_pages(world, role, **params)
        assert any(n.startswith("pub/") for n in names)
        assert any(n.startswith("sec/") for n in names) == sees_sec, (params, names)
        # One page per visible adapter: a hidden row neither fills a page nor leaves a token.
        assert len(tokens) == len(names) - 1
        assert all(("sec" in _decoded(t)) <= sees_sec for t in tokens)
    runs_seen = {c["id"] for c in _api(world).get("/v1/compositions", headers=world.h(role)).json()["items"]}
    assert world.runs["pub"] in runs_seen
    assert (world.runs["sec"] in runs_seen) == sees_sec
    assert (world.runs["cross"] in runs_seen) == sees_sec  # it names sec/a as an input
    spaces = {n["name"] for n in _api(world).get("/v1/namespaces", headers=world.h(role)).json()}
    assert ("pub" in spaces, "sec" in spaces) == (True, sees_sec)
    events = _api(world).get("/v1/audit", params={"limit": 1000}, headers=world.h(role)).json()
    assert any(e["namespace"] == "pub" for e in events)
    assert any(e["namespace"] == "sec" for e in events) == sees_sec
    assert any("sec/" in json.dumps(e) for e in events) == sees_sec
    me = _api(world).get("/v1/whoami", headers=world.h(role)).json()
    assert me["principal"] == world.principal(role)
    assert {g["namespace"] for g in me["grants"]} == (
        {"pub", "sec"} if role in ("reader", "writer", "maintainer") else set()
    )
    manages = role in ("maintainer", "admin")
    hooks = _api(world).get("/v1/webhooks", headers=world.h(role)).json()
    assert {h["namespace"] for h in hooks} == ({"pub", "sec"} if manages else set())
    hooks_page = world.web[role].get("/webhooks")
    assert hooks_page.status_code == (200 if manages else 403)
    # The sec webhook's row and its deliveries' rows (every change in sec is an event for it).
    assert (hooks_page.text.count(f"<code>{world.hooks['sec'][:8]}</code>") >= 2) == manages
    page = world.web[role].get("/").text
    assert ('href="/webhooks"' in page) == manages
    assert "pub/a" in page and ("sec/a" in page) == sees_sec
    runs_page = world.web[role].get("/compositions").text
    assert (world.runs["sec"] in runs_page) == sees_sec
    searched = world.web[role].get("/", params={"q": "cached"}).text
    assert "pub/cached" in searched and ("sec/cached" in searched) == sees_sec
    digest = world.web[role].get("/digest", params={"sha256": world.sha["sec/a@1"]}).text
    assert ("sec/a" in digest) == sees_sec


@pytest.mark.parametrize("role", ["none", "reader"])
def test_lineage_and_digest_lookup_hide_unseen_ancestors(world: World, role: str) -> None:
    sees = role == "reader"
    up = _api(world).get("/v1/adapters/pub/child/versions/1/lineage", headers=world.h(role)).json()
    hidden = [n for n in up["nodes"] if n["hidden"]]
    assert {n["name"] for n in up["nodes"] if not n["hidden"]} == (
        {"pub/child", "pub/a", "sec/a"} if sees else {"pub/child", "pub/a"}
    )
    if not sees:
        assert hidden == [
            {
                "name": None,
                "version": None,
                "sha256": world.sha["sec/a@1"],
                "depth": 1,
                "status": None,
                "hidden": True,
            }
        ]
        edge = next(e for e in up["edges"] if e["parent"].startswith("sha256:"))
        assert (edge["operator"], edge["weight"]) == ("linear", 0.5)  # how the visible child was made
    down = (
        _api(world)
        .get("/v1/adapters/pub/a/versions/1/lineage", params={"direction": "down"}, headers=world.h(role))
        .json()
    )
    into_hidden = [e for e in down["edges"] if e["child"].startswith("sha256:")]
    assert bool(into_hidden) != sees
    assert all(
        e["operator"] is None and e["weight"] is None and e["composition_id"] is None for e in into_hidden
    )
    [match] = _api(world).get(f"/v1/artifacts/{world.sha['pub/child@1']}", headers=world.h(role)).json()
    assert ("sec/a" in json.dumps(match)) == sees
    page = world.web[role].get("/adapters/pub/child/versions/1").text
    assert ("sec/a@1" in page) == sees and (f"sha256:{world.sha['sec/a@1'][:12]}" in page) != sees
    events = _api(world).get("/v1/audit", params={"subject": "pub/mixed"}, headers=world.h(role)).json()
    trigger = next(e for e in events if e["action"] == "compose_trigger")
    hidden_input = {"hidden": True, "sha256": world.sha["sec/a@1"]}
    assert (hidden_input in trigger["details"]["inputs"]) != sees and "pub/a@1" in trigger["details"][
        "inputs"
    ]
    svg = world.web[role].get("/adapters/pub/child/versions/1/lineage").text
    assert ("sec/a" in svg) == sees and ('class="node hidden"' in svg) != sees


def test_protected_aliases_are_marked_on_the_web_page(world: World) -> None:
    page = world.web["reader"].get("/adapters/pub/a").text
    assert 'class="tag protected"' in page and "prod→1" in page
    assert '<span class="tag">staging→1</span>' in page


def test_revocation_holds_from_the_next_request(world: World) -> None:
    ns = "pub"
    set_grant(world.reg, ns, "key:w", "writer")
    ok = _api(world).put(f"/v1/adapters/{ns}/b/aliases/edge", json={"version": 1}, headers=world.h("writer"))
    assert ok.status_code == 200
    assert (
        _api(world).delete(f"/v1/namespaces/{ns}/grants/key:w", headers=world.h("maintainer")).status_code
        == 204
    )
    refused = _api(world).put(
        f"/v1/adapters/{ns}/b/aliases/edge", json={"version": 1}, headers=world.h("writer")
    )
    assert (
        refused.status_code == 403
        and "key:w is reader in namespace pub (via internal)" in refused.json()["detail"]
    )
    set_grant(world.reg, ns, "key:w", "writer")


def test_grant_changes_are_audited(world: World) -> None:
    set_grant(world.reg, "sec", "group:auditors", "reader")
    r = _api(world).put(
        "/v1/namespaces/sec/grants/group:auditors", json={"role": "writer"}, headers=world.h("maintainer")
    )
    assert r.status_code == 200
    events = _api(world).get("/v1/audit", params={"subject": "sec"}, headers=world.h("admin")).json()
    change = next(
        e for e in events if e["action"] == "grant_set" and e["details"]["grantee"] == "group:auditors"
    )
    assert (change["actor"], change["details"]["from_role"], change["details"]["to_role"]) == (
        "key:m",
        "reader",
        "writer",
    )
    r = _api(world).patch(
        "/v1/namespaces/sec",
        json={"visibility": "private", "description": "secret team"},
        headers=world.h("maintainer"),
    )
    assert r.status_code == 200
    outsider = _api(world).get("/v1/audit", params={"subject": "sec"}, headers=world.h("none")).json()
    assert outsider == []


def test_a_delete_blocked_by_an_unseen_child_names_it_by_digest(world: World) -> None:
    """pub/a@1 has a child in sec: a maintainer of pub alone may not delete it, and learns only the
    child's digest; a maintainer of both reads its name."""
    secret = create_key(world.reg, "pub-only", "reader")
    set_grant(world.reg, "pub", "key:pub-only", "maintainer")
    r = _api(world).delete("/v1/adapters/pub/a/versions/1", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 409
    detail = r.json()["detail"]
    assert "pub/child@1" in detail and f"sha256:{world.sha['sec/child@1']}" in detail and "sec/" not in detail
    both = _api(world).delete("/v1/adapters/pub/a/versions/1", headers=world.h("maintainer"))
    assert both.status_code == 409 and "sec/child@1" in both.json()["detail"]
