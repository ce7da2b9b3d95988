"""The protocol core stays sans-I/O: no asyncio, no sockets, no clock."""

import ast
from pathlib import Path

import rtms_gateway.protocol as protocol

FORBIDDEN_MODULES = {"asyncio", "socket", "ssl", "time", "datetime", "picows", "websockets",
                     "httpx", "selectors", "threading", "trio", "anyio"}


def _modules():
    return sorted(Path(protocol.__file__).parent.glob("*.py"))


def test_protocol_imports_no_io_or_clock():
    for path in _modules():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"


def test_protocol_does_not_read_the_environment():
    for path in _modules():
        text = path.read_text()
        assert "os.environ" not in text and "getenv" not in text, path.name
