"""A real OpenID Connect provider for the tests, built on Authlib's server components, run as its own
process on loopback (`python -m tests.oidc_provider --port P --config FILE`).

What a registry sees of an IdP is all here and real: discovery (`/.well-known/openid-configuration`),
a JWKS with an RSA and an EC P-256 key, the authorization code flow with PKCE (S256) and nonce behind a
login form, a token endpoint authenticating its clients (public with PKCE, or client_secret_post /
client_secret_basic), and RS256 / ES256 ID tokens with a `groups` claim. Authlib's
AuthorizationCodeGrant, OpenIDCode and CodeChallenge do the protocol; this module only stores codes in
memory and wires them to Starlette.

Two test controls stand in for an IdP administrator: `POST /test/rotate` adds a new signing key (what a
key rotation does, so the registry meets an unknown `kid`), and `POST /test/mint` signs a token with
chosen claims by the provider's own keys (expired, other audience, future nbf...: what clock skew and
misconfigured clients produce). Neither is reachable by the registry under test: it only reads
discovery and the JWKS, as it would from any provider.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import OAuth2Request, grants
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

ID_TOKEN_SECONDS = 300


@dataclass
class Client:
    client_id: str
    redirect_uris: list[str]
    secret: str | None = None  # None: a public client (PKCE, auth method none)
    alg: str = "RS256"
    auth_method: str = "none"  # none | client_secret_post | client_secret_basic

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return self.redirect_uris[0]

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "profile", "email", "groups"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return self.secret is not None and secrets.compare_digest(client_secret, self.secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint != "token" or method == self.auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


@dataclass
class User:
    username: str
    password: str
    sub: str
    groups: list[str] = field(default_factory=list)
    email: str | None = None


@dataclass
class Code:
    code: str
    client_id: str
    redirect_uri: str
    scope: str
    user: User
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    auth_time: int = field(default_factory=lambda: int(time.time()))
    expires_at: float = field(default_factory=lambda: time.time() + 300)

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scope

    def get_nonce(self) -> str | None:
        return self.nonce

    def get_auth_time(self) -> int:
        return self.auth_time

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> list[str]:
        return ["pwd"]


class Provider:
    def __init__(self, issuer: str, clients: list[Client], users: list[User]) -> None:
        self.issuer = issuer
        self.clients = {c.client_id: c for c in clients}
        self.users = {u.username: u for u in users}
        self.codes: dict[str, Code] = {}
        self.keys = {
            "RS256": RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig", "alg": "RS256"}),
            "ES256": ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig", "alg": "ES256"}),
        }
        self.published: list[Any] = list(self.keys.values())

    def jwks(self) -> dict[str, Any]:
        return KeySet(self.published).as_dict(private=False)

    def rotate(self, alg: str) -> str:
        """A new signing key for `alg`, published beside the old ones (as IdPs roll keys)."""
        kid = f"{alg.lower()}-{secrets.token_hex(4)}"
        params = {"kid": kid, "use": "sig", "alg": alg}
        key = (
            RSAKey.generate_key(2048, parameters=params)
            if alg == "RS256"
            else ECKey.generate_key("P-256", parameters=params)
        )
        self.keys[alg] = key
        self.published.append(key)
        return kid

    def sign(self, claims: dict[str, Any], alg: str, kid: str | None = None) -> str:
        key = self.keys[alg]
        header = {"alg": alg, "kid": kid if kid is not None else key.kid}
        return jwt.encode(header, claims, key, algorithms=[alg])


class OIDC(OpenIDCode):
    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=True)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return any(c.nonce == nonce for c in self.provider.codes.values())

    def resolve_client_private_key(self, client: Client) -> Any:
        return self.provider.keys[client.alg]

    def get_client_algorithm(self, client: Client) -> str:
        return client.alg

    def get_encode_header(self, client: Client) -> dict[str, Any]:
        return {"alg": client.alg, "kid": self.provider.keys[client.alg].kid}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        return {
            "iss": self.provider.issuer,
            "aud": [client.client_id],
            "iat": now,
            "exp": now + ID_TOKEN_SECONDS,
        }

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        info = UserInfo(sub=user.sub, name=user.username, groups=list(user.groups))
        if user.email:
            info["email"] = user.email
        return info


def make_code_grant(provider: Provider) -> type[grants.AuthorizationCodeGrant]:
    class CodeGrant(grants.AuthorizationCodeGrant):
        TOKEN_ENDPOINT_AUTH_METHODS = ["none", "client_secret_post", "client_secret_basic"]

        def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
            data = request.payload.data
            provider.codes[code] = Code(
                code=code,
                client_id=request.client.client_id,
                redirect_uri=data.get("redirect_uri", ""),
                scope=request.payload.scope or "",
                user=request.user,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
            )

        def query_authorization_code(self, code: str, client: Client) -> Code | None:
            item = provider.codes.get(code)
            if item and item.client_id == client.client_id and item.expires_at > time.time():
                return item
            return None

        def delete_authorization_code(self, authorization_code: Code) -> None:
            provider.codes.pop(authorization_code.code, None)  # one use only

        def authenticate_user(self, authorization_code: Code) -> User:
            return authorization_code.user

    return CodeGrant


class StarletteOAuth2Request(OAuth2Request):
    def __init__(
        self, method: str, url: str, headers: Any, args: dict[str, str], form: dict[str, str]
    ) -> None:
        super().__init__(method, url, headers=headers)
        self._args, self._form = args, form
        self.payload = BasicOAuth2Payload({**args, **form})

    @property
    def args(self) -> dict[str, str]:
        return self._args

    @property
    def form(self) -> dict[str, str]:
        return self._form


class Server(AuthorizationServer):
    def __init__(self, provider: Provider) -> None:
        super().__init__(scopes_supported=["openid", "profile", "email", "groups"])
        self.provider = provider
        self.register_token_generator(
            "default", BearerTokenGenerator(lambda *a, **k: secrets.token_urlsafe(32))
        )

    def query_client(self, client_id: str) -> Client | None:
        return self.provider.clients.get(client_id)

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        pass  # access tokens are not used by the registry: it reads the ID token

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        return request  # built by the endpoint (Starlette reads forms asynchronously)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError

    def handle_response(self, status: int, body: Any, headers: Any) -> Response:
        headers = dict(headers or [])
        if isinstance(body, dict):
            return JSONResponse(body, status_code=status, headers=headers)
        return Response(body or "", status_code=status, headers=headers)


LOGIN = """<!doctype html><html><body><h1>Test IdP sign-in</h1>{error}
<form method="post" action="/authorize?{query}">
<label>user <input name="username" id="username"></label>
<label>password <input name="password" id="password" type="password"></label>
<button type="submit" id="login">Sign in</button></form></body></html>"""


def build_app(provider: Provider) -> Starlette:
    server = Server(provider)
    server.register_grant(make_code_grant(provider), [OIDC(provider), CodeChallenge(required=True)])

    async def oauth_request(request: Request) -> StarletteOAuth2Request:
        form = dict(await request.form()) if request.method == "POST" else {}
        return StarletteOAuth2Request(
            request.method,
            str(request.url),
            request.headers,
            dict(request.query_params),
            {k: str(v) for k, v in form.items()},
        )

    async def discovery(request: Request) -> Response:
        i = provider.issuer
        return JSONResponse(
            {
                "issuer": i,
                "authorization_endpoint": f"{i}/authorize",
                "token_endpoint": f"{i}/token",
                "jwks_uri": f"{i}/jwks",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256", "ES256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "none",
                    "client_secret_post",
                    "client_secret_basic",
                ],
                "scopes_supported": ["openid", "profile", "email", "groups"],
                "claims_supported": ["sub", "name", "email", "groups"],
            }
        )

    async def jwks(request: Request) -> Response:
        return JSONResponse(provider.jwks())

    async def authorize(request: Request) -> Response:
        oreq = await oauth_request(request)
        # The form posts back to /authorize with the client's query: only the query is the request.
        query_only = StarletteOAuth2Request(
            request.method, str(request.url), request.headers, dict(request.query_params), {}
        )
        try:
            grant = server.get_consent_grant(request=query_only)
        except OAuth2Error as exc:
            return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=400)
        if request.method == "GET":
            return HTMLResponse(LOGIN.format(error="", query=escape(urlencode(dict(request.query_params)))))
        user = provider.users.get(oreq.form.get("username", ""))
        if user is None or not secrets.compare_digest(user.password, oreq.form.get("password", "")):
            body = LOGIN.format(
                error="<p id='error'>wrong user or password</p>",
                query=escape(urlencode(dict(request.query_params))),
            )
            return HTMLResponse(body, status_code=401)
        return server.create_authorization_response(request=query_only, grant_user=user, grant=grant)

    async def token(request: Request) -> Response:
        return server.create_token_response(await oauth_request(request))

    async def rotate(request: Request) -> Response:
        alg = (await request.json()).get("alg", "RS256")
        return JSONResponse({"kid": provider.rotate(alg)})

    async def mint(request: Request) -> Response:
        body = await request.json()
        now = int(time.time())
        claims = {"iss": provider.issuer, "iat": now, "exp": now + ID_TOKEN_SECONDS, **body.get("claims", {})}
        for name in body.get("drop", []):
            claims.pop(name, None)
        return JSONResponse({"token": provider.sign(claims, body.get("alg", "RS256"), body.get("kid"))})

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks", jwks),
            Route("/authorize", authorize, methods=["GET", "POST"]),
            Route("/token", token, methods=["POST"]),
            Route("/test/rotate", rotate, methods=["POST"]),
            Route("/test/mint", mint, methods=["POST"]),
        ]
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", required=True, help="JSON: {clients: [...], users: [...]}")
    args = parser.parse_args()
    os.environ["AUTHLIB_INSECURE_TRANSPORT"] = "1"  # loopback http, as tests run it
    config = json.loads(Path(args.config).read_text())
    issuer = f"http://127.0.0.1:{args.port}"
    provider = Provider(
        issuer, [Client(**c) for c in config["clients"]], [User(**u) for u in config["users"]]
    )
    uvicorn.run(build_app(provider), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
