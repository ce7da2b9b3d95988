import typing

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtms_gateway.protocol import messages as m
from rtms_gateway.protocol.constants import MsgType
from rtms_gateway.protocol.errors import (
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    RTMSError,
)

from .strategies import strategy_for

CLIENT_MODELS = typing.get_args(m.ClientMessage)
SERVER_MODELS = typing.get_args(m.ServerMessage)


def test_every_message_type_has_one_model():
    tags = sorted(cls.__struct_config__.tag for cls in CLIENT_MODELS + SERVER_MODELS)
    # 24-27 are reserved metadata types Zoom does not define yet: decoded as UnknownMessage.
    expected = sorted(set(range(1, 30)) - {24, 25, 26, 27})
    assert tags == expected
    assert {MsgType(t).name for t in tags}  # every tag is a known MsgType


@pytest.mark.parametrize("model", CLIENT_MODELS, ids=lambda c: c.__name__)
@settings(max_examples=60)
@given(data=st.data())
def test_client_models_round_trip(model, data):
    msg = data.draw(strategy_for(model))
    wire = m.encode(msg)
    assert m.decode_client_message(wire) == msg
    assert m.decode_client_message(wire.decode()) == msg  # text frames too


@pytest.mark.parametrize("model", SERVER_MODELS, ids=lambda c: c.__name__)
@settings(max_examples=60)
@given(data=st.data())
def test_server_models_round_trip(model, data):
    msg = data.draw(strategy_for(model))
    assert m.decode_server_message(m.encode(msg)) == msg


@settings(max_examples=2000)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_protocol_error(blob):
    for decode in (m.decode_client_message, m.decode_server_message):
        try:
            decode(blob)
        except ProtocolError:
            pass


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=2000)
@given(st.dictionaries(st.sampled_from(["msg_type", "content", "status_code", "timestamp", "data",
                                        "event", "state", "signature", "rtms_stream_id"]),
                       _json_values, max_size=6),
       st.integers(min_value=-5, max_value=40))
def test_arbitrary_json_objects_raise_only_protocol_error(obj, msg_type):
    obj.setdefault("msg_type", msg_type)
    wire = msgspec.json.encode(obj)
    for decode in (m.decode_client_message, m.decode_server_message):
        try:
            decode(wire)
        except ProtocolError:
            pass


def test_unknown_message_type_is_a_value():
    msg = m.decode_server_message(b'{"msg_type": 99, "anything": [1, 2]}')
    assert isinstance(msg, m.UnknownMessage)
    assert msg.msg_type == 99 and msg.body["anything"] == [1, 2]
    # a client-side type arriving at the client is "unknown" to it, not an error
    assert isinstance(m.decode_server_message(b'{"msg_type": 1}'), m.UnknownMessage)


def test_unknown_fields_are_ignored():
    msg = m.decode_server_message(b'{"msg_type":12,"timestamp":5,"future_field":{"x":1}}')
    assert msg == m.KeepAliveReq(timestamp=5)


@pytest.mark.parametrize(
    "frame, field",
    [
        (b'{"msg_type":14,"content":{"timestamp":1}}', "$.content.data"),
        (b'{"msg_type":14,"content":{"data":"QQ==","timestamp":"1"}}', "$.content.timestamp"),
        (b'{"msg_type":2}', "$.status_code"),
        (b'{"msg_type":"2","status_code":0}', "$.msg_type"),
        (b'{"msg_type":12,"timestamp":1', None),
    ],
)
def test_rejections_name_the_field(frame, field):
    with pytest.raises(ProtocolError) as err:
        m.decode_server_message(frame)
    assert err.value.field == field


@pytest.mark.parametrize("frame", [b"{", b"[1, 2]", b'{"msg_type":"2"}',
                                   b'{"msg_type":17,"content":{"data":"\xc4\x28","timestamp":1}}'])
def test_what_the_peer_sent_wrong_is_a_remote_protocol_error(frame):
    for decode in (m.decode_server_message, m.decode_client_message):
        with pytest.raises(RemoteProtocolError) as err:
            decode(frame)
        assert isinstance(err.value, RTMSError) and not isinstance(err.value, LocalProtocolError)
    bad = m.decode_server_message(b'{"msg_type":14,"content":{"data":"*not base64*","timestamp":1}}')
    with pytest.raises(RemoteProtocolError):
        bad.content.payload_bytes()


def test_handshake_owner_id_under_any_product_key():
    for key in ("meeting_uuid", "webinar_uuid", "session_id", "engagement_id", "call_id"):
        wire = msgspec.json.encode({"msg_type": 1, key: "X/1+=", "rtms_stream_id": "s", "signature": "ab"})
        msg = m.decode_client_message(wire)
        assert msg.owner_id == "X/1+="


def test_chat_data_may_be_text_or_object():
    text = m.decode_server_message(b'{"msg_type":18,"content":{"data":"hi","timestamp":1}}')
    obj = m.decode_server_message(b'{"msg_type":18,"content":{"data":{"text":"hi"},"timestamp":1}}')
    assert text.content.data == "hi" and obj.content.data == {"text": "hi"}


def test_media_payload_decodes_lazily():
    msg = m.decode_server_message(b'{"msg_type":14,"content":{"data":"AAEC","timestamp":1,"length":3}}')
    assert msg.content.payload_bytes() == b"\x00\x01\x02"
    bad = m.decode_server_message(b'{"msg_type":14,"content":{"data":"*not base64*","timestamp":1}}')
    with pytest.raises(ProtocolError):
        bad.content.payload_bytes()


def test_encode_leaves_out_unset_optionals():
    assert m.encode(m.KeepAliveResp(timestamp=7)) == b'{"msg_type":13,"timestamp":7}'
    assert m.encode(m.KeepAliveResp(timestamp=7, sequence=2)) == b'{"msg_type":13,"timestamp":7,"sequence":2}'


def test_invalid_utf8_inside_a_string_is_a_protocol_error():
    # found by the frame fuzzer: msgspec raises UnicodeDecodeError here, not a MsgspecError
    from rtms_gateway.protocol.errors import ProtocolError
    from rtms_gateway.protocol.messages import decode_client_message, decode_server_message

    for decode in (decode_server_message, decode_client_message):
        with pytest.raises(ProtocolError, match="UTF-8"):
            decode(b'{"msg_type":17,"content":{"data":"\xc4\x28","timestamp":1}}')
