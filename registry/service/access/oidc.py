"""Single sign-on: bearer JWTs from the configured OIDC issuer become principals `user:<claim>`.

- The issuer's keys come from its discovery document (`<issuer>/.well-known/openid-configuration`,
  whose `issuer` must equal the configured one) and its `jwks_uri`; they are cached, refetched after
  `oidc_jwks_max_age_seconds`, and at once on an unknown `kid` (at most every
  `oidc_jwks_min_refresh_seconds`, so forged kids cannot make the server hammer the issuer).
- Accepted: RS256 and ES256 signatures by a key of the matching type; `alg: none` and HMAC (and any
  other algorithm) are refused before any key is looked at. `iss`, `aud`, `exp` are required and
  checked, `nbf` and `iat` when present, each with `oidc_leeway_seconds` of clock skew (at most 300).
- Every HTTP call to the issuer has a bounded timeout; the issuer is https (or a loopback address).

Nothing here caches a decision: a token is checked on every request, and its groups are as the issuer
stated them when it signed it (so a group removed at the issuer is gone when the token expires).
"""

from __future__ import annotations

import ipaddress
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from registry.errors import Unauthenticated
from registry.service.access.identity import MAX_PRINCIPAL, Access
from registry.service.access.principals import sso_access
from registry.settings import Settings

ALGORITHMS = {"RS256": "RSA", "ES256": "EC"}  # the only ones accepted, with their key types


class OidcUnavailable(Unauthenticated):
    """The issuer could not be asked (down, slow, bad answer): the token cannot be checked (401)."""


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("pemreg_")


def _check_issuer_url(url: str) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ValueError(f"PEMREG_OIDC_ISSUER: {url} must be https (http only on a loopback address)")


@dataclass
class OidcVerifier:
    settings: Settings
    _metadata: dict[str, Any] | None = None
    _metadata_at: float = 0.0
    _keys: dict[str | None, jwt.PyJWK] = field(default_factory=dict)
    _keys_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not self.settings.oidc_issuer:
            raise ValueError("OIDC is not configured (PEMREG_OIDC_ISSUER)")
        _check_issuer_url(self.issuer)
        if not self.settings.resolved_oidc_audience:
            raise ValueError("PEMREG_OIDC_ISSUER needs PEMREG_OIDC_AUDIENCE (or PEMREG_OIDC_CLIENT_ID)")

    @property
    def issuer(self) -> str:
        return str(self.settings.oidc_issuer).rstrip("/")

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=self.settings.oidc_http_timeout_seconds, follow_redirects=False)
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcUnavailable(f"token: the issuer did not answer ({type(exc).__name__})") from None
        if not isinstance(body, dict):
            raise OidcUnavailable("token: the issuer answered something that is not a JSON object")
        return body

    def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (cached like its keys)."""
        now = time.monotonic()
        if self._metadata is None or now - self._metadata_at > self.settings.oidc_jwks_max_age_seconds:
            doc = self._get(f"{self.issuer}/.well-known/openid-configuration")
            if str(doc.get("issuer", "")).rstrip("/") != self.issuer or not doc.get("jwks_uri"):
                raise OidcUnavailable("token: the discovery document names another issuer or no jwks_uri")
            self._metadata, self._metadata_at = doc, now
        return self._metadata

    def _refresh(self) -> None:
        keys: dict[str | None, jwt.PyJWK] = {}
        for raw in self._get(str(self.metadata()["jwks_uri"])).get("keys", []):
            if (
                not isinstance(raw, dict)
                or raw.get("use", "sig") != "sig"
                or raw.get("kty") not in ALGORITHMS.values()
            ):
                continue
            try:
                keys[raw.get("kid")] = jwt.PyJWK(raw)
            except jwt.PyJWTError:
                continue  # a key type or curve we do not use
        self._keys, self._keys_at = keys, time.monotonic()

    def _key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        with self._lock:
            age = time.monotonic() - self._keys_at
            unknown = kid not in self._keys and not (kid is None and len(self._keys) == 1)
            if age > self.settings.oidc_jwks_max_age_seconds or (
                unknown and age > self.settings.oidc_jwks_min_refresh_seconds
            ):
                self._refresh()
            key = self._keys.get(kid)
            if key is None and kid is None and len(self._keys) == 1:
                key = next(iter(self._keys.values()))
        if key is None:
            raise Unauthenticated("token: signed by a key the issuer does not publish")
        if key.key_type != ALGORITHMS[alg] or key.algorithm_name != alg:
            raise Unauthenticated(f"token: {alg} with a {key.key_type} key meant for {key.algorithm_name}")
        return key

    def verify(self, token: str, *, audience: str | None = None, nonce: str | None = None) -> dict[str, Any]:
        """The claims of a token this issuer signed for `audience` (default: the configured one)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("token: not a JWT") from None
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            # `none`, HS256 (a public key used as an HMAC secret) and anything else: refused up front.
            raise Unauthenticated(f"token: algorithm {str(alg)[:20]!r} is not accepted (RS256 or ES256)")
        key = self._key(header.get("kid"), alg)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience or self.settings.resolved_oidc_audience,
                issuer=self.issuer,
                leeway=self.settings.oidc_leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("token: expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("token: not valid yet (nbf / iat in the future)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("token: issued for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("token: issued by another issuer") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthenticated(f"token: no {exc.claim!r} claim") from None
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"token: {type(exc).__name__}") from None
        if nonce is not None and claims.get("nonce") != nonce:
            raise Unauthenticated("token: nonce does not match this sign-in")
        return claims

    def access(self, claims: dict[str, Any]) -> Access:
        """`user:<claim>` with the groups claim; admin when a group is in PEMREG_OIDC_ADMIN_GROUPS."""
        value = claims.get(self.settings.oidc_user_claim)
        if not isinstance(value, str) or not value.strip():
            raise Unauthenticated(f"token: no {self.settings.oidc_user_claim!r} claim to name the user by")
        principal = f"user:{value.strip()}"
        if len(principal) > MAX_PRINCIPAL or any(ord(c) < 32 or ord(c) == 127 for c in principal):
            raise Unauthenticated(f"token: {self.settings.oidc_user_claim!r} is too long or not text")
        raw = claims.get(self.settings.oidc_groups_claim) or []
        items = raw.split() if isinstance(raw, str) else raw if isinstance(raw, list) else []
        groups = tuple(g for g in items if isinstance(g, str) and g and len(g) <= 200)
        return sso_access(self.settings, principal, groups)
