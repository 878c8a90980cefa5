"""Single sign-on against a real OIDC provider process on loopback (tests/oidc_provider.py, Authlib).

Tokens come from the provider's own authorization code + PKCE flow (or, for the malformed cases an IdP
or a clock produces, are signed by the provider's keys); the registry finds the keys through the
provider's discovery document and JWKS, as it would with any provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from fastapi.testclient import TestClient

from api.app import create_app
from api.web.session import COOKIE
from registry import service
from registry.service import Registry
from registry.service.access.namespaces import create_namespace, set_grant
from registry.service.access.oidc import OidcVerifier
from registry.service.access.principals import sso_access, stored_access
from registry.service.admin.sessions import close_session, open_session, session_access
from registry.settings import Settings
from tests.oidc_service import CLI_CLIENT, EC_CLIENT, USERS, OidcProvider

WEB_CLIENT = "pemreg-web"


@pytest.fixture(scope="module")
def sso(
    oidc: OidcProvider, tmp_path_factory: pytest.TempPathFactory, adapter_dirs: dict[str, Path]
) -> Iterator[tuple[TestClient, Registry]]:
    home = tmp_path_factory.mktemp("sso")
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'reg.db'}",
        artifact_store=(home / "artifacts").as_uri(),
        principal="operator",
        oidc_issuer=oidc.issuer,
        oidc_audience=CLI_CLIENT,
        oidc_client_id=WEB_CLIENT,
        oidc_client_secret="web-secret",
        oidc_admin_groups="registry-admins",
        oidc_jwks_min_refresh_seconds=0,
    )
    from registry.catalog.migrate import upgrade

    upgrade(settings.resolved_database_url)
    reg = Registry(settings)
    reg.store.ensure_ready()
    create_namespace(reg, "ml", visibility="private", protected_aliases=["prod"])
    set_grant(reg, "ml", "group:ml-team", "writer")
    service.register_adapter(reg, adapter_dirs["lora"], "ml/base-skill")
    with TestClient(create_app(settings)) as client:
        yield client, reg


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_token_from_the_code_flow_is_a_principal_with_its_groups(
    sso: tuple[TestClient, Registry], oidc: OidcProvider
) -> None:
    client, reg = sso
    ada = oidc.id_token("ada")
    me = client.get("/v1/whoami", headers=_bearer(ada)).json()
    assert me == {
        "principal": "user:ada-0001",
        "groups": ["ml-team"],
        "role": "reader",
        "grants": [{"namespace": "ml", "role": "writer", "via": "group:ml-team"}],
    }
    # Its group's grant lets it see and write the private namespace; bob's groups do not.
    assert client.get("/v1/adapters/ml/base-skill", headers=_bearer(ada)).status_code == 200
    moved = client.put(
        "/v1/adapters/ml/base-skill/aliases/staging", json={"version": 1}, headers=_bearer(ada)
    )
    assert moved.status_code == 200
    protected = client.put(
        "/v1/adapters/ml/base-skill/aliases/prod", json={"version": 1}, headers=_bearer(ada)
    )
    assert protected.status_code == 403 and "needs maintainer" in protected.json()["detail"]
    bob = oidc.id_token("bob")
    assert client.get("/v1/adapters/ml/base-skill", headers=_bearer(bob)).status_code == 404
    # The admin group is a global admin.
    root = client.get("/v1/whoami", headers=_bearer(oidc.id_token("root"))).json()
    assert (root["principal"], root["role"]) == ("user:root-0003", "admin")
    # Seen users are remembered with their groups: a run they store starts later as them.
    assert stored_access(reg, "user:ada-0001").groups == ("ml-team",)


def test_es256_tokens_are_accepted(sso: tuple[TestClient, Registry], oidc: OidcProvider) -> None:
    client, _ = sso
    token = oidc.id_token("ada", client_id=EC_CLIENT)
    assert jwt.get_unverified_header(token)["alg"] == "ES256"
    r = client.get(
        "/v1/whoami", headers=_bearer(oidc.mint({"sub": "ada-0001", "aud": CLI_CLIENT}, alg="ES256"))
    )
    assert r.status_code == 200 and r.json()["principal"] == "user:ada-0001"
    # An ID token for another client is not for this registry.
    wrong_aud = client.get("/v1/whoami", headers=_bearer(token))
    assert wrong_aud.status_code == 401 and "audience" in wrong_aud.json()["detail"]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(claims: dict[str, object], header: dict[str, object]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def test_bad_tokens_are_refused(sso: tuple[TestClient, Registry], oidc: OidcProvider) -> None:
    client, _ = sso
    now = int(time.time())
    ok = {"sub": "ada-0001", "aud": CLI_CLIENT}
    cases = {
        "expired": (oidc.mint({**ok, "exp": now - 3600}), "expired"),
        "not yet valid": (oidc.mint({**ok, "nbf": now + 3600}), "not valid yet"),
        "other audience": (oidc.mint({**ok, "aud": "someone-else"}), "audience"),
        "other issuer": (oidc.mint({**ok, "iss": "https://evil.example"}), "issuer"),
        "no exp": (oidc.mint(ok, drop=("exp",)), "'exp'"),
        "no sub": (oidc.mint({"aud": CLI_CLIENT}), "'sub'"),
        "unknown key": (oidc.mint(ok, kid="nobody-publishes-this"), "does not publish"),
        "alg none": (
            _unsigned({**ok, "iss": oidc.issuer, "exp": now + 60}, {"alg": "none", "typ": "JWT"}),
            "'none'",
        ),
    }
    # The classic confusion: HS256 "signed" with the issuer's public RSA key (PEM) as the HMAC secret.
    public = next(k for k in oidc.jwks()["keys"] if k["kty"] == "RSA")
    pem = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(public)).public_bytes(  # type: ignore[union-attr]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": public["kid"]}).encode())
    body = _b64(json.dumps({**ok, "iss": oidc.issuer, "exp": now + 60}).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    cases["hmac with the public key"] = (f"{head}.{body}.{_b64(mac)}", "'HS256'")
    for label, (token, why) in cases.items():
        r = client.get("/v1/whoami", headers=_bearer(token))
        assert r.status_code == 401, label
        assert why in r.json()["detail"], (label, r.json()["detail"])
        assert r.headers["www-authenticate"] == "Bearer"
    # Within the allowed clock skew (60 s) a just-expired token still passes; beyond it, not.
    assert client.get("/v1/whoami", headers=_bearer(oidc.mint({**ok, "exp": now - 30}))).status_code == 200
    assert client.get("/v1/whoami", headers=_bearer(oidc.mint({**ok, "exp": now - 120}))).status_code == 401


def test_rotated_keys_are_fetched_on_an_unknown_kid(
    sso: tuple[TestClient, Registry], oidc: OidcProvider
) -> None:
    client, _ = sso
    assert client.get("/v1/whoami", headers=_bearer(oidc.id_token("ada"))).status_code == 200  # keys cached
    new_kid = oidc.rotate("RS256")
    token = oidc.id_token("ada")
    assert jwt.get_unverified_header(token)["kid"] == new_kid
    assert client.get("/v1/whoami", headers=_bearer(token)).status_code == 200


def test_unknown_kids_do_not_hammer_the_issuer(oidc: OidcProvider) -> None:
    settings = Settings(oidc_issuer=oidc.issuer, oidc_audience=CLI_CLIENT, oidc_jwks_min_refresh_seconds=60)
    verifier = OidcVerifier(settings)
    fetched = []
    original = verifier._refresh

    def counting() -> None:
        fetched.append(1)
        original()

    verifier._refresh = counting  # type: ignore[method-assign]
    for i in range(20):
        with pytest.raises(Exception, match="does not publish"):
            verifier.verify(oidc.mint({"sub": "x", "aud": CLI_CLIENT}, kid=f"forged-{i}"))
    assert len(fetched) == 1  # the first lookup; then at most one refetch per minute


def test_web_sign_in_through_the_issuer(sso: tuple[TestClient, Registry], oidc: OidcProvider) -> None:
    client, _ = sso
    web = TestClient(client.app)
    assert "Sign in with your organization" in web.get("/signin").text
    start = web.get("/signin/oidc", params={"next": "/adapters/ml/base-skill"}, follow_redirects=False)
    assert start.status_code == 303
    auth = urlsplit(start.headers["location"])
    query = {k: v[0] for k, v in parse_qs(auth.query).items()}
    assert (query["response_type"], query["client_id"], query["code_challenge_method"]) == (
        "code",
        WEB_CLIENT,
        "S256",
    )
    assert query["state"] and query["nonce"] and len(query["code_challenge"]) == 43
    # The user signs in at the provider (its login form), which redirects back with a code.
    ada = next(u for u in USERS if u["username"] == "ada")
    with httpx.Client(base_url=oidc.issuer) as idp:
        back = idp.post(f"/authorize?{auth.query}", data={"username": "ada", "password": ada["password"]})
    assert back.status_code == 302
    callback = urlsplit(back.headers["location"])
    # A forged state (another sign-in's callback replayed into this browser) is refused.
    forged = web.get(f"{callback.path}?code=x&state=not-{query['state']}", follow_redirects=False)
    assert forged.status_code == 401 and "state does not match" in forged.text
    # The refusal ended the flow: start again, then complete it.
    start = web.get("/signin/oidc", params={"next": "/adapters/ml/base-skill"}, follow_redirects=False)
    auth = urlsplit(start.headers["location"])
    with httpx.Client(base_url=oidc.issuer) as idp:
        back = idp.post(f"/authorize?{auth.query}", data={"username": "ada", "password": ada["password"]})
    callback = urlsplit(back.headers["location"])
    done = web.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/adapters/ml/base-skill"
    page = web.get("/adapters/ml/base-skill")
    assert page.status_code == 200 and "user:ada-0001" in page.text
    # The callback carried to another browser (a stolen redirect) finds no sign-in begun there.
    web2 = TestClient(client.app)
    replay = web2.get(f"{callback.path}?{callback.query}", follow_redirects=False)
    assert replay.status_code == 401 and "no sign-in in progress" in replay.text
    assert COOKIE not in replay.headers.get("set-cookie", "")
    # Sign-out ends the SSO session on the server: a copy of its cookie taken before is refused too.
    stolen = web.cookies[COOKIE]
    csrf = page.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    assert web.post("/signout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert web.get("/adapters/ml/base-skill", follow_redirects=False).status_code == 303  # to /signin
    thief = TestClient(client.app)
    thief.cookies.set(COOKIE, stolen)
    assert thief.get("/adapters/ml/base-skill", follow_redirects=False).status_code == 303


def test_sso_web_sessions_end_when_sso_is_turned_off(sso: tuple[TestClient, Registry]) -> None:
    _, reg = sso
    access = sso_access(reg.settings, "user:ada-0001", ("ml-team",))
    token = open_session(reg, access, 600)
    assert session_access(reg, token) == access
    off = Registry(reg.settings.model_copy(update={"oidc_issuer": None}))  # the same catalog, SSO unset
    off.__dict__["sessions"] = reg.sessions
    assert session_access(off, token) is None
    assert close_session(reg, token) and session_access(reg, token) is None


def test_nonce_of_another_sign_in_is_refused(sso: tuple[TestClient, Registry], oidc: OidcProvider) -> None:
    """An ID token minted for another sign-in (its nonce) cannot complete this browser's sign-in."""
    client, _ = sso
    from registry.errors import Unauthenticated

    verifier = client.app.state.oidc
    token = oidc.mint({"sub": "ada-0001", "aud": WEB_CLIENT, "nonce": "someone-elses"})
    with pytest.raises(Unauthenticated, match="nonce"):
        verifier.verify(token, audience=WEB_CLIENT, nonce="this-browsers")
    assert verifier.verify(token, audience=WEB_CLIENT, nonce="someone-elses")["sub"] == "ada-0001"
