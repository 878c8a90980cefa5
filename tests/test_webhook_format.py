"""The webhook wire format and the allowed-hosts rule, without a catalog: Standard Webhooks signatures
against the specification's published test vector, rotation, replay and tampering; event bodies; one
corpus of URLs and resolved addresses for the creation-time and connect-time checks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest

from registry.errors import InvalidInput
from registry.service.events.hosts import AllowedHosts, BlockedAddress, check_address, check_url
from registry.webhooks import signing
from registry.webhooks.types import Event, EventData, EventType

# The test vector of the Standard Webhooks specification (standard-webhooks/standard-webhooks,
# libraries' test suites): this secret, id, timestamp and body sign to this signature.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_signature_matches_the_specification_test_vector() -> None:
    assert signing.sign(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY) == VECTOR_SIGNATURE
    headers = signing.headers([VECTOR_SECRET], VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY)
    assert headers == {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    assert signing.verify(VECTOR_SECRET, headers, VECTOR_BODY, now=VECTOR_TIMESTAMP + 10) == VECTOR_ID


def test_signature_is_hmac_sha256_over_id_timestamp_body_with_the_decoded_key() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    body = b'{"type":"alias.moved"}'
    expected = hmac.new(base64.b64decode(secret[6:]), b"msg_1.1700000000." + body, hashlib.sha256).digest()
    assert signing.sign(secret, "msg_1", 1700000000, body) == "v1," + base64.b64encode(expected).decode()


def test_verify_refuses_tampering_replays_and_missing_headers() -> None:
    now = 1_700_000_000
    headers = signing.headers([VECTOR_SECRET], "msg_x", now, b"{}")
    with pytest.raises(signing.InvalidSignature, match="no signature matches"):
        signing.verify(VECTOR_SECRET, headers, b'{"a":1}', now=now)
    with pytest.raises(signing.InvalidSignature, match="too far"):
        signing.verify(VECTOR_SECRET, headers, b"{}", now=now + 301)
    with pytest.raises(signing.InvalidSignature, match="missing"):
        signing.verify(VECTOR_SECRET, {k: v for k, v in headers.items() if k != "webhook-id"}, b"{}", now=now)
    with pytest.raises(signing.InvalidSignature, match="no signature matches"):
        signing.verify(signing.new_secret(), headers, b"{}", now=now)


def test_rotation_signs_with_both_secrets_and_either_verifies() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    headers = signing.headers([new, old], "msg_r", 1_700_000_000, b"{}")
    assert len(headers["webhook-signature"].split()) == 2
    for secret in (old, new):  # a receiver still on the old secret, and one already on the new
        assert signing.verify(secret, headers, b"{}", now=1_700_000_000) == "msg_r"


def test_event_body_is_compact_json_with_a_utc_timestamp() -> None:
    at = datetime(2026, 12, 7, 10, 0, 0, 123000, tzinfo=UTC)
    event = Event(
        type=EventType.ALIAS_MOVED, timestamp=at, data=EventData(name="acme/math", alias="prod", version=3)
    )
    body = event.body()
    assert json.loads(body) == {
        "type": "alias.moved",
        "timestamp": "2026-12-07T10:00:00.123Z",
        "data": {"name": "acme/math", "alias": "prod", "version": 3},
    }
    assert " " not in body and Event.parse(body).data.version == 3


ALLOWED = AllowedHosts.parse("hooks.example.com, 127.0.0.1:9000, [::1]:9001, ci.example.org:8443")

# (url, accepted at creation)
URLS = [
    ("https://hooks.example.com/x", True),
    ("http://hooks.example.com:8080/x", True),  # a host without a port allows any port
    ("HTTPS://HOOKS.Example.com/x", True),
    ("http://127.0.0.1:9000/hook", True),
    ("http://127.0.0.1:9001/hook", False),  # listed with another port
    ("http://127.0.0.1/hook", False),
    ("http://[::1]:9001/h", True),
    ("http://[0:0:0:0:0:0:0:1]:9001/h", True),  # the same address, spelt out
    ("https://ci.example.org:8443/", True),
    ("https://ci.example.org/", False),
    ("https://evil.hooks.example.com/x", False),  # exact match, never a suffix
    ("https://hooks.example.com.evil.net/x", False),
    ("ftp://hooks.example.com/x", False),
    ("https://user:pw@hooks.example.com/x", False),
    ("https://hooks.example.com/x#frag", False),
    ("https://hooks.example.com/a b", False),
    ("https:///nohost", False),
    ("http://hooks.example.com:99999/", False),
    ("", False),
]


@pytest.mark.parametrize(("url", "ok"), URLS)
def test_check_url(url: str, ok: bool) -> None:
    if ok:
        assert check_url(url, ALLOWED).host
    else:
        with pytest.raises(InvalidInput) as err:
            check_url(url, ALLOWED)
        assert err.value.field == "url"


# (resolved address, host as written in the URL, port, allowed at connect time)
ADDRESSES = [
    ("93.184.216.34", "hooks.example.com", 443, True),  # public address of a listed name
    ("127.0.0.1", "hooks.example.com", 443, False),  # a listed name pointed at loopback by DNS
    ("10.0.0.5", "hooks.example.com", 443, False),
    ("169.254.169.254", "hooks.example.com", 80, False),  # cloud metadata
    ("::ffff:127.0.0.1", "hooks.example.com", 443, False),  # IPv4-mapped loopback
    ("127.0.0.1", "127.0.0.1", 9000, True),  # loopback listed as an address
    ("127.0.0.1", "127.0.0.1", 9002, False),
    ("::1", "::1", 9001, True),
    ("0.0.0.0", "hooks.example.com", 443, False),
    ("224.0.0.1", "hooks.example.com", 443, False),
    ("93.184.216.34", "other.example.com", 443, False),  # not listed at all
]


@pytest.mark.parametrize(("address", "host", "port", "ok"), ADDRESSES)
def test_check_address(address: str, host: str, port: int, ok: bool) -> None:
    if ok:
        check_address(address, host, port, ALLOWED)
    else:
        with pytest.raises(BlockedAddress):
            check_address(address, host, port, ALLOWED)


@pytest.mark.parametrize("entry", ["host:port", "h:0", "a/b", "[::1]x", "user@h"])
def test_bad_allowed_hosts_entries_are_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="PEMREG_WEBHOOK_ALLOWED_HOSTS"):
        AllowedHosts.parse(entry)


def test_no_allowed_hosts_refuses_every_url() -> None:
    with pytest.raises(InvalidInput, match="not an allowed webhook host"):
        check_url("http://127.0.0.1:9000/", AllowedHosts.parse(""))
