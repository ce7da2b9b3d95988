import hashlib
import hmac

from rtms_gateway.protocol.signature import (
    handshake_signature_valid,
    signature,
    url_validation_response,
    webhook_signature,
    webhook_signature_valid,
)


def test_handshake_signature_matches_zoom_quickstart_formula():
    expected = hmac.new(b"secret", b"client,uuid/x+y==,stream", hashlib.sha256).hexdigest()
    assert signature("client", "secret", "uuid/x+y==", "stream") == expected
    assert handshake_signature_valid("client", "secret", "uuid/x+y==", "stream", expected.upper())
    assert not handshake_signature_valid("client", "secret", "uuid/x+y==", "stream", "0" * 64)
    assert not handshake_signature_valid("client", "secret", "uuid/x+y==", "stream", "é")


def test_webhook_signature_is_over_the_raw_body():
    body = b'{"event":"meeting.rtms_started","payload":{"a":"\xc3\xa9"}}'
    expected = "v0=" + hmac.new(b"tok", b"v0:1700000000:" + body, hashlib.sha256).hexdigest()
    assert webhook_signature("tok", 1700000000, body) == expected
    assert webhook_signature_valid("tok", "1700000000", body, expected)
    assert not webhook_signature_valid("tok", "1700000000", body + b" ", expected)
    assert not webhook_signature_valid("tok", "1700000001", body, expected)
    assert not webhook_signature_valid("tok", "1700000000", body, "v0=ü")


def test_url_validation_response():
    out = url_validation_response("tok", "plain")
    assert out == {"plainToken": "plain",
                   "encryptedToken": hmac.new(b"tok", b"plain", hashlib.sha256).hexdigest()}
