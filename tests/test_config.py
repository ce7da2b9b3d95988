"""Settings: the reconnect numbers default to Zoom's, and config depends on nothing above
the protocol (the simulator's command reads settings without importing the client)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from rtms_gateway import config
from rtms_gateway.config import Settings, load_settings
from rtms_gateway.protocol import constants
from rtms_gateway.protocol.errors import StartupError
from rtms_gateway.protocol.messages import TranscriptParams

RECONNECT_SETTINGS = ("RTMS_RECONNECT_INITIAL_S", "RTMS_RECONNECT_MAX_S", "RTMS_MEDIA_WINDOW_S",
                      "RTMS_SIGNALING_WINDOW_S")


def test_the_reconnect_settings_default_to_zoom_failover_numbers(monkeypatch):
    for name in RECONNECT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.media_window_s == constants.MEDIA_RECONNECT_WINDOW_S == 65.0
    assert settings.signaling_window_s == constants.SIGNALING_RECONNECT_WINDOW_S == 60.0
    assert (settings.reconnect_initial_s, settings.reconnect_max_s) == (3.0, 30.0)


def test_the_reconnect_settings_are_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("RTMS_MEDIA_WINDOW_S", "30")
    monkeypatch.setenv("RTMS_RECONNECT_INITIAL_S", "0.5")
    settings = Settings(_env_file=None)
    assert (settings.media_window_s, settings.reconnect_initial_s) == (30.0, 0.5)


def test_config_imports_neither_the_client_nor_the_gateway():
    tree = ast.parse(Path(config.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
    assert not {m for m in imported if m and ("client" in m or "gateway" in m.split("."))}


def test_reading_settings_loads_no_client_module():
    code = ("import sys, rtms_gateway.config as c; c.Settings(_env_file=None);"
            "print(sorted(m for m in sys.modules if m.startswith(('rtms_gateway.client', "
            "'rtms_gateway.gateway'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---- transcript language ----------------------------------------------------------------


@pytest.mark.parametrize("value, language", [
    ("english", constants.TranscriptLanguage.ENGLISH),
    ("LANGUAGE_ID_GERMAN", constants.TranscriptLanguage.GERMAN),
    ("French-France", constants.TranscriptLanguage.FRENCH_FRANCE),
    (" 20 ", constants.TranscriptLanguage.JAPANESE),
    ("36", constants.TranscriptLanguage.VIETNAMESE),
    ("-1", constants.TranscriptLanguage.NONE),
    ("auto", constants.TranscriptLanguage.NONE),
])
def test_the_transcript_language_by_name_or_number_goes_into_the_handshake(value, language):
    settings = Settings(_env_file=None, RTMS_TRANSCRIPT_LANGUAGE=value, RTMS_TRANSCRIPT_LID="false")
    assert settings.transcript_source is language
    assert settings.media_params.transcript == TranscriptParams(
        content_type=int(constants.ContentType.TEXT), src_language=int(language), enable_lid=False)


def test_without_the_transcript_settings_zoom_keeps_its_defaults():
    settings = Settings(_env_file=None)
    assert settings.transcript_source is None and settings.media_params.transcript is None
    only_lid = Settings(_env_file=None, RTMS_TRANSCRIPT_LID="true").media_params.transcript
    assert only_lid == TranscriptParams(content_type=int(constants.ContentType.TEXT), enable_lid=True)


@pytest.mark.parametrize("value", ["klingon", "37", "-2", "9.0", "english,german", "LANGUAGE_ID_"])
def test_a_language_zoom_would_refuse_is_refused_at_start(value, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("RTMS_TRANSCRIPT_LANGUAGE", value)
    with pytest.raises(StartupError) as caught:
        load_settings()
    message = str(caught.value)
    assert "RTMS_TRANSCRIPT_LANGUAGE" in message and "unknown transcript language" in message
    assert "-1..36" in message
