import hashlib
import hmac
import json
from datetime import UTC, datetime

from helpdesk.webhooks.signing import envelope, signature_header, verify_signature

SECRET = "whsec_test-secret"
BODY = b'{"id":"e1","type":"ping","data":{}}'
NOW = 1_800_000_000


def test_envelope_is_compact_json_with_the_documented_fields() -> None:
    body = envelope(
        event_id="0b1c",
        event_type="message.created",
        created_at=datetime(2026, 11, 23, 18, 30, 5, 123000, tzinfo=UTC),
        tenant_slug="acme-air",
        data={"message_id": 7, "changed": {"text": "héllo"}},
    )
    assert (
        body
        == (
            '{"id":"0b1c","type":"message.created","created_at":'
            '"2026-11-23T18:30:05.123000Z","tenant":"acme-air",'
            '"data":{"message_id":7,"changed":{"text":"héllo"}}}'
        ).encode()
    )
    assert json.loads(body)["tenant"] == "acme-air"


def test_header_is_the_hmac_of_timestamp_dot_body() -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW)
    expected = hmac.new(
        SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256
    ).hexdigest()
    assert header == f"t={NOW},v1={expected}"


def test_signature_verifies() -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW)
    assert verify_signature(SECRET, header, BODY, now=NOW + 10) is True
    assert verify_signature(SECRET, header, BODY.decode(), now=NOW - 10) is True


def test_tampered_body_fails() -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW)
    assert verify_signature(SECRET, header, BODY + b" ", now=NOW) is False
    assert (
        verify_signature(SECRET, header, BODY.replace(b"ping", b"pong"), now=NOW)
        is False
    )


def test_wrong_secret_fails() -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW)
    assert verify_signature("whsec_other", header, BODY, now=NOW) is False


def test_old_or_future_timestamp_fails() -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW)
    assert verify_signature(SECRET, header, BODY, now=NOW + 300) is True
    assert verify_signature(SECRET, header, BODY, now=NOW + 301) is False
    assert verify_signature(SECRET, header, BODY, now=NOW - 301) is False
    assert verify_signature(SECRET, header, BODY, tolerance=600, now=NOW + 500) is True


def test_timestamp_is_part_of_the_signature() -> None:
    header = signature_header([SECRET], BODY, timestamp=NOW)
    replayed = header.replace(f"t={NOW}", f"t={NOW + 200}")
    assert verify_signature(SECRET, replayed, BODY, now=NOW + 200) is False


def test_malformed_headers_fail() -> None:
    digest = signature_header([SECRET], BODY, timestamp=NOW).split("v1=")[1]
    for header in (
        "",
        "garbage",
        f"v1={digest}",
        f"t={NOW}",
        f"t=soon,v1={digest}",
        f"t={NOW},v0={digest}",
        f"t={NOW},v1=é{digest}",
    ):
        assert verify_signature(SECRET, header, BODY, now=NOW) is False, header


def test_either_secret_verifies_during_a_rotation() -> None:
    header = signature_header(["whsec_new", "whsec_old"], BODY, timestamp=NOW)
    assert header.count("v1=") == 2
    assert verify_signature("whsec_new", header, BODY, now=NOW) is True
    assert verify_signature("whsec_old", header, BODY, now=NOW) is True
    assert verify_signature("whsec_other", header, BODY, now=NOW) is False
