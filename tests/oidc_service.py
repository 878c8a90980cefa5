"""The test OIDC provider (tests/oidc_provider.py) as a session-scoped process on loopback, and a client
of it that signs users in the way a command-line tool with a browser would: authorization code + PKCE
+ nonce through the login form, the code redeemed at the token endpoint, the ID token kept."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from tests.live_server import free_port

CLI_CLIENT = "pemreg-cli"  # public client: PKCE, no secret
CLI_REDIRECT = "http://127.0.0.1:9/callback"  # never contacted: the test reads the redirect itself
EC_CLIENT = "pemreg-ec"  # its ID tokens are ES256
USERS = [
    {"username": "ada", "password": "pw-ada", "sub": "ada-0001", "groups": ["ml-team"], "email": "ada@x.org"},
    {"username": "bob", "password": "pw-bob", "sub": "bob-0002", "groups": ["other"], "email": "bob@x.org"},
    {"username": "root", "password": "pw-root", "sub": "root-0003", "groups": ["registry-admins"]},
]


@dataclass
class OidcProvider:
    issuer: str
    proc: subprocess.Popen[bytes]
    config: dict[str, Any]

    def id_token(
        self, username: str, *, client_id: str = CLI_CLIENT, redirect_uri: str = CLI_REDIRECT
    ) -> str:
        """Sign `username` in through the real flow and return the ID token."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": "openid profile email",
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        user = next(u for u in USERS if u["username"] == username)
        with httpx.Client(base_url=self.issuer, timeout=10) as http:
            assert http.get(f"/authorize?{query}").status_code == 200  # the login form
            sent = http.post(f"/authorize?{query}", data={"username": username, "password": user["password"]})
            assert sent.status_code == 302, sent.text
            back = parse_qs(urlsplit(sent.headers["location"]).query)
            assert back["state"] == [state]
            tokens = http.post(
                "/token",
                data={
                    "grant_type": "authorization_code",
                    "code": back["code"][0],
                    "redirect_uri": redirect_uri,
                    "client_id": client_id,
                    "code_verifier": verifier,
                },
            )
            assert tokens.status_code == 200, tokens.text
            return str(tokens.json()["id_token"])

    def mint(
        self,
        claims: dict[str, Any],
        *,
        alg: str = "RS256",
        kid: str | None = None,
        drop: tuple[str, ...] = (),
    ) -> str:
        body = {"claims": claims, "alg": alg, "drop": list(drop), **({"kid": kid} if kid else {})}
        return str(httpx.post(f"{self.issuer}/test/mint", json=body, timeout=10).json()["token"])

    def rotate(self, alg: str = "RS256") -> str:
        return str(httpx.post(f"{self.issuer}/test/rotate", json={"alg": alg}, timeout=10).json()["kid"])

    def jwks(self) -> dict[str, Any]:
        return dict(httpx.get(f"{self.issuer}/jwks", timeout=10).json())


def start_provider(workdir: Path, redirect_uris: list[str]) -> OidcProvider:
    port = free_port()
    config = {
        "clients": [
            {"client_id": CLI_CLIENT, "redirect_uris": [CLI_REDIRECT, *redirect_uris]},
            {"client_id": EC_CLIENT, "redirect_uris": [CLI_REDIRECT], "alg": "ES256"},
            {
                "client_id": "pemreg-web",
                "redirect_uris": redirect_uris,
                "secret": "web-secret",
                "auth_method": "client_secret_post",
            },
        ],
        "users": USERS,
    }
    path = workdir / "oidc.json"
    path.write_text(json.dumps(config))
    log = (workdir / "oidc.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.oidc_provider", "--port", str(port), "--config", str(path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ},
    )
    issuer = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"OIDC provider exited: {(workdir / 'oidc.log').read_text()[-2000:]}")
        try:
            if httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=1).status_code == 200:
                return OidcProvider(issuer, proc, config)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("OIDC provider did not answer within 30 s")


def stop_provider(provider: OidcProvider) -> None:
    provider.proc.terminate()
    try:
        provider.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        provider.proc.kill()


@pytest.fixture(scope="session")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    provider = start_provider(tmp_path_factory.mktemp("oidc"), ["http://testserver/signin/oidc/callback"])
    yield provider
    stop_provider(provider)
