"""Every REST operation has a row in an authorization matrix: the global roles (tests/test_api_auth.py)
or the namespace roles (tests/test_org_matrix.py, whose listing test reads the collection routes). A
route added without a row fails here, so "every route is covered" stays true as the API grows."""

from __future__ import annotations

from pathlib import Path

from api.app import create_app
from registry.settings import Settings
from tests.test_api_auth import ENDPOINTS
from tests.test_org_matrix import ROUTES

LISTINGS = "org:test_listings_show_only_what_the_role_reads"
A, N, C, W = "/v1/adapters/{ns}/{name}", "/v1/namespaces", "/v1/compositions", "/v1/webhooks/{webhook_id}"
V = A + "/versions/{v}"
# (method, OpenAPI path) -> the matrix rows that exercise it for every role.
COVERED_BY: dict[tuple[str, str], list[str]] = {
    ("GET", "/healthz"): ["auth:healthz"],
    ("GET", "/readyz"): ["auth:readyz"],
    ("GET", "/v1/base-models"): ["auth:base-models.list"],
    ("POST", "/v1/base-models"): ["auth:base-models.add"],
    ("POST", "/v1/base-models:merge"): ["auth:base-models.merge"],
    ("GET", "/v1/base-models/{label}"): ["auth:base-models.show"],
    ("GET", "/v1/adapters"): ["auth:adapters.list", LISTINGS],
    ("POST", "/v1/adapters"): ["auth:adapters.register", "org:register"],
    ("GET", A): ["auth:adapters.show", "org:adapter.show"],
    ("DELETE", A): ["org:adapter.delete-all"],
    ("PATCH", A): ["org:adapter.patch"],
    ("GET", V): ["auth:versions.get", "org:version.get", "org:version.by-alias", "org:version.by-digest"],
    ("DELETE", V): ["org:version.delete"],
    ("PUT", A + "/aliases/{alias}"): ["auth:aliases.set", "org:alias.set", "org:alias.set-protected"],
    ("DELETE", A + "/aliases/{alias}"): ["org:alias.delete", "org:alias.delete-protected"],
    ("GET", V + "/lineage"): ["auth:versions.lineage", "org:version.lineage"],
    ("GET", V + "/serving"): ["auth:versions.serving", "org:version.serving"],
    ("POST", V + ":deprecate"): ["org:version.deprecate"],
    ("POST", V + ":archive"): ["org:version.archive"],
    ("POST", V + ":restore"): ["org:version.restore"],
    ("POST", V + ":undelete"): ["org:version.undelete"],
    ("GET", V + "/download"): [
        "auth:versions.download",
        "auth:versions.manifest",
        "org:version.download",
        "org:version.manifest",
    ],
    ("POST", C): ["org:compose", "org:compose.protected-alias"],
    ("GET", C): [LISTINGS],
    ("POST", C + ":validate"): ["org:compose.validate"],
    ("GET", C + "/{composition_id}"): ["org:composition.get", "org:composition.prefix"],
    ("GET", "/v1/audit"): ["auth:audit", LISTINGS],
    ("GET", "/v1/artifacts/{sha256}"): ["auth:artifacts", "org:artifact"],
    ("POST", "/v1/keys"): ["auth:keys.create"],
    ("GET", "/v1/keys"): ["auth:keys.list"],
    ("DELETE", "/v1/keys/{name}"): ["auth:keys.revoke"],
    ("GET", "/v1/webhooks"): ["auth:webhooks.list", LISTINGS],
    ("POST", "/v1/webhooks"): ["auth:webhooks.create", "org:webhook.create"],
    ("GET", W): ["org:webhook.show"],
    ("PATCH", W): ["org:webhook.patch"],
    ("DELETE", W): ["org:webhook.delete"],
    ("POST", W + ":rotate-secret"): ["org:webhook.rotate"],
    ("POST", W + ":ping"): ["org:webhook.ping"],
    ("GET", W + "/deliveries"): ["org:webhook.deliveries"],
    ("GET", W + "/deliveries/{event_id}"): ["org:webhook.delivery"],
    ("POST", W + "/deliveries/{event_id}:redeliver"): ["org:webhook.redeliver"],
    ("GET", N): [LISTINGS],
    ("POST", N): ["org:namespace.create"],
    ("GET", N + "/{ns}"): ["org:namespace.get"],
    ("PATCH", N + "/{ns}"): ["org:namespace.patch"],
    ("GET", N + "/{ns}/grants"): ["org:namespace.grants"],
    ("PUT", N + "/{ns}/grants/{subject}"): ["org:grant.set"],
    ("DELETE", N + "/{ns}/grants/{subject}"): ["org:grant.revoke"],
    ("GET", "/v1/whoami"): [LISTINGS],
    ("GET", "/v1/methods"): ["auth:methods"],
}


def _operations() -> set[tuple[str, str]]:
    spec = create_app(Settings(home=Path("/nonexistent"))).openapi()
    return {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}


def test_every_rest_operation_has_a_matrix_row() -> None:
    operations = _operations()
    missing = sorted(operations - COVERED_BY.keys())
    assert not missing, f"REST operations with no row in test_api_auth or test_org_matrix: {missing}"
    gone = sorted(COVERED_BY.keys() - operations)
    assert not gone, f"rows for operations the API no longer has: {gone}"


def test_every_named_row_exists() -> None:
    rows = {f"auth:{e[0]}" for e in ENDPOINTS} | {f"org:{r.id}" for r in ROUTES} | {LISTINGS}
    named = {row for rows_ in COVERED_BY.values() for row in rows_}
    assert named <= rows, sorted(named - rows)
    # The other way round too: a matrix row whose route is not in this table was mapped by mistake.
    rest_rows = {r for r in rows if not r.startswith("org:web.") and r != "auth:metrics"}
    assert rest_rows <= named, sorted(rest_rows - named)
