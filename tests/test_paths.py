"""File names from wire values, and the data-directory check, on a real file system."""

from __future__ import annotations

import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtms_gateway.protocol.errors import RTMSError
from rtms_gateway.sinks.paths import MediaPathError, loggable, media_path, safe_name

from .strategies import hostile_ids

_SAFE = re.compile(r"[A-Za-z0-9_~-]{1,41}")
HOSTILE = ["..", ".", "", "/", "../../victim/pwned", "/abs/path", "\x00", "a\x00b", "line\r\nbreak",
           "\x1b[31mred", "\x7f\x01\x02", "x" * 10_240, "Åsa/Öl", "-rf", "~", "CON", "a/b", "a_b", "A_B",
           "aGVsbG8+/w==", "AGVSBG8+/W==", "\ud800", "nul\x00" * 3000]


def _check(name: str) -> None:
    assert _SAFE.fullmatch(name), name
    assert name not in (".", "..") and not name.startswith("-")


def test_plain_ids_keep_their_name():
    assert safe_name("0f3a9c2b7e114d5a8b6c9d0e1f2a3b4c") == "0f3a9c2b7e114d5a8b6c9d0e1f2a3b4c"
    assert safe_name(16778240) == "16778240"


def test_hostile_ids_get_bounded_distinct_stable_names():
    names = [safe_name(v) for v in HOSTILE]
    for name in names:
        _check(name)
    assert names == [safe_name(v) for v in HOSTILE]
    # distinct, even where case does not count (macOS, Windows)
    assert len({n.lower() for n in names}) == len(HOSTILE)
    assert safe_name("../../victim/pwned").startswith("_victim_pwned~")  # a readable prefix
    assert safe_name("aGVsbG8+/w==").startswith("aGVsbG8_w_~")


@settings(max_examples=300, deadline=None)
@given(values=st.lists(hostile_ids, min_size=2, max_size=6, unique=True))
def test_any_ids_get_safe_distinct_names(values):
    names = [safe_name(v) for v in values]
    for name in names:
        _check(name)
    assert len({n.lower() for n in names}) == len(values)


def test_paths_inside_the_data_dir_resolve(tmp_path):
    data = tmp_path / "data"
    (data / "m%3D%3D").mkdir(parents=True)
    assert media_path(data, "m%3D%3D/s1-audio-mixed.wav") == data.resolve() / "m%3D%3D" / "s1-audio-mixed.wav"
    assert media_path(data, "a/../b.wav") == data.resolve() / "b.wav"


@pytest.mark.parametrize("relative", ["../outside.wav", "a/../../outside.wav", "/etc/passwd", "", ".",
                                      "x\x00y.wav", "..", "m/" + "../" * 20 + "tmp"])
def test_paths_leading_out_are_refused(tmp_path, relative):
    with pytest.raises(MediaPathError) as raised:
        media_path(tmp_path / "data", relative)
    assert isinstance(raised.value, RTMSError)


def test_a_symlink_leading_out_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "secret").write_text("not media")
    os.symlink(tmp_path / "secret", data / "link.wav")
    os.symlink(tmp_path, data / "meeting")
    for relative in ("link.wav", "meeting/secret"):
        with pytest.raises(MediaPathError):
            media_path(data, relative)


def test_loggable_escapes_and_cuts():
    assert loggable("a\r\nb\x00") == "a\\r\\nb\\x00"
    assert len(loggable("x" * 10_000)) == 41
