"""docs/PROTOCOL_COVERAGE.md stays honest: every member of the protocol's enums has its
row, every test it names exists, and every current item marked N is listed under Gaps."""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

import pytest

from rtms_gateway.protocol import constants as c

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "PROTOCOL_COVERAGE.md"
TESTS = ROOT / "tests"

# The enums whose every member is a row, each in the section whose heading names it.
ENUMS: tuple[type[Enum], ...] = (
    c.MsgType, c.EventType, c.ZccEventType, c.SessionState, c.StreamState, c.StatusCode,
    c.StopReason, c.MediaType, c.DataOption, c.ChatOperation,
)
# `file.py::test_name`, and after it, for a test still on its branch, `(lands with `x`)`.
TEST_REF = re.compile(r"`([\w/]+\.py)::(\w+)`(?: \(lands with `([\w-]+)`\))?")
NO = "**N**"


def sections() -> dict[str, list[list[str]]]:
    """Each `## ` heading's table rows, as lists of cells (header and rule left out)."""
    out: dict[str, list[list[str]]] = {}
    current: list[list[str]] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            current = out.setdefault(line[3:].strip(), [])
        elif current is not None and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if cells[0] != "item" and not set(cells[0]) <= {"-"}:
                current.append(cells)
    return out


def section_of(enum: type[Enum]) -> list[list[str]]:
    named = [rows for title, rows in sections().items() if title.endswith(f"({enum.__name__})")]
    assert len(named) == 1, f"one section titled '... ({enum.__name__})' expected, found {len(named)}"
    return named[0]


def gaps_text() -> str:
    text = DOC.read_text(encoding="utf-8")
    assert "\n## Gaps\n" in text, "the Gaps section is missing"
    return text.split("\n## Gaps\n", 1)[1].split("\n## ", 1)[0]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_every_member_of_each_enum_has_one_row_and_no_row_is_stray(enum):
    rows = section_of(enum)
    listed = [row[0] for row in rows]
    expected = [f"{int(member.value)} {name}" for name, member in enum.__members__.items()]
    missing = sorted(set(expected) - set(listed), key=expected.index)
    stray = [item for item in listed if item not in expected]
    doubled = sorted({item for item in listed if listed.count(item) > 1})
    assert not missing and not stray and not doubled, (
        f"{enum.__name__}: missing rows {missing}, rows matching no member {stray}, "
        f"rows twice {doubled}")


def test_every_row_has_its_five_cells_filled():
    for title, rows in sections().items():
        for row in rows:
            assert len(row) == 5 and all(row), f"{title}: row {row[0]!r} needs 5 filled cells: {row}"


def _defines(path: Path, name: str) -> bool:
    return re.search(rf"^\s*(?:async\s+)?def {name}\(", path.read_text(encoding="utf-8"), re.M) is not None


def test_every_test_named_exists_and_none_still_marked_as_landing_has_landed():
    refs = TEST_REF.findall(DOC.read_text(encoding="utf-8"))
    assert len(refs) > 100
    absent, landed = [], []
    for file, name, branch in refs:
        path = TESTS / file
        found = path.is_file() and _defines(path, name)
        if branch and found:
            landed.append(f"{file}::{name} (drop its 'lands with `{branch}`')")
        elif not branch and not found:
            absent.append(f"{file}::{name}")
    assert not absent, f"tests named in {DOC.name} that do not exist: {sorted(set(absent))}"
    assert not landed, f"tests now on this branch, still marked as landing: {sorted(set(landed))}"


def test_every_current_item_marked_n_is_listed_under_gaps():
    gaps = gaps_text()
    unlisted = []
    for title, rows in sections().items():
        whole = re.search(r"\((\w+)\)$", title)
        if whole and f"every row of {whole.group(1)}" in gaps:
            continue
        for item, reference, *rest in rows:
            if reference.startswith("current") and any(NO in cell for cell in rest):
                name = item.split(" ", 1)[-1]
                if name not in gaps:
                    unlisted.append(f"{title}: {item}")
    assert not unlisted, f"current items marked N but not under Gaps: {unlisted}"


@pytest.mark.parametrize("page", ["README.md", "docs/SIMULATOR.md"])
def test_the_table_is_linked_from_the_readme_and_the_simulator_guide(page):
    assert "PROTOCOL_COVERAGE.md" in (ROOT / page).read_text(encoding="utf-8")
