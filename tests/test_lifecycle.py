"""The stream lifecycle table: every legal move, every illegal one refused, and the sets
the rest of the gateway asks for, derived from it."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

import rtms_gateway
from rtms_gateway.client.lifecycle import (
    ENDINGS,
    FAILURES,
    LIVE,
    MOVES,
    RECONNECT_AT_ONCE,
    RETRYABLE,
    TERMINAL,
    Lifecycle,
    MeetingState,
    StreamState,
    meeting_state,
)
from rtms_gateway.protocol.errors import LocalProtocolError

S = StreamState

# The moves, written out independently of the module's table.
LEGAL = {
    (S.CONNECTING, S.READY),
    *((S.CONNECTING, end) for end in (S.STOPPED, S.LOST, S.INTERRUPTED, S.MOVED, S.DETACHED,
                                      S.REJECTED, S.REFUSED, S.FAILED, S.CANCELLED)),
    *((S.READY, end) for end in (S.STOPPED, S.LOST, S.INTERRUPTED, S.MOVED, S.DETACHED,
                                 S.FAILED, S.CANCELLED)),
    (S.LOST, S.RECONNECTING),
    (S.STOPPED, S.RECONNECTING),
    (S.REJECTED, S.RECONNECTING),
    *((S.INTERRUPTED, s) for s in (S.RECONNECTING, S.STOPPED, S.DETACHED, S.CANCELLED)),
    *((S.MOVED, s) for s in (S.RECONNECTING, S.STOPPED, S.DETACHED, S.CANCELLED)),
    *((S.RECONNECTING, s) for s in (S.CONNECTING, S.STOPPED, S.DETACHED, S.CANCELLED)),
    (S.DETACHED, S.CONNECTING),
}


def test_the_table_names_every_state_and_only_states():
    assert set(MOVES) == set(StreamState)
    assert all(after <= set(StreamState) for after in MOVES.values())


@pytest.mark.parametrize(("before", "after"), sorted(LEGAL))
def test_every_legal_move_is_made(before, after):
    lifecycle = Lifecycle(before)
    assert lifecycle.can_move(after)
    lifecycle.move(after)
    assert lifecycle.state is after


@pytest.mark.parametrize(("before", "after"),
                         sorted(set(itertools.product(StreamState, StreamState)) - LEGAL))
def test_every_illegal_move_is_refused_and_leaves_the_state_alone(before, after):
    lifecycle = Lifecycle(before)
    assert not lifecycle.can_move(after)
    with pytest.raises(LocalProtocolError, match=f"from {before.value} to {after.value}"):
        lifecycle.move(after)
    assert lifecycle.state is before


def test_a_stream_begins_connecting():
    assert Lifecycle().state is S.CONNECTING


def test_terminal_states_are_those_only_a_retry_can_follow():
    assert TERMINAL == {S.STOPPED, S.LOST, S.REJECTED, S.REFUSED, S.FAILED, S.CANCELLED}


def test_live_states_are_all_the_others_a_detached_and_a_reconnecting_stream_included():
    assert LIVE == {S.CONNECTING, S.READY, S.RECONNECTING, S.INTERRUPTED, S.MOVED, S.DETACHED}
    assert LIVE | TERMINAL == set(StreamState) and not LIVE & TERMINAL


def test_retryable_ends_are_lost_stopped_rejected_interrupted_and_moved_the_last_two_at_once():
    assert RETRYABLE == {S.LOST, S.STOPPED, S.REJECTED, S.INTERRUPTED, S.MOVED}
    assert RECONNECT_AT_ONCE == {S.INTERRUPTED, S.MOVED}


def test_a_connection_ends_in_any_state_but_ready_connecting_and_reconnecting():
    assert ENDINGS == set(StreamState) - {S.CONNECTING, S.READY, S.RECONNECTING}


def test_failures_are_the_ends_neither_zoom_nor_we_chose():
    assert FAILURES == {S.LOST, S.REJECTED, S.REFUSED, S.FAILED}


def test_the_stored_strings_are_the_states_values():
    assert [s.value for s in StreamState] == [
        "connecting", "ready", "reconnecting", "interrupted", "moved", "detached", "stopped",
        "lost", "rejected", "refused", "failed", "cancelled"]
    assert StreamState("lost") is S.LOST and "lost" in TERMINAL  # a stored string is asked as it is


@pytest.mark.parametrize(("states", "stopped", "expected"), [
    ([], False, MeetingState.PENDING),
    (["connecting"], False, MeetingState.LIVE),
    (["reconnecting"], False, MeetingState.LIVE),
    (["detached"], False, MeetingState.LIVE),
    (["ready"], True, MeetingState.STOPPED),  # Zoom stopped the meeting
    (["stopped", "ready"], False, MeetingState.LIVE),
    (["stopped"], True, MeetingState.STOPPED),
    (["stopped"], False, MeetingState.STOPPED),
    (["rejected", "lost"], True, MeetingState.FAILED),
    (["refused"], False, MeetingState.FAILED),
    (["failed", "stopped"], True, MeetingState.STOPPED),
    (["cancelled"], False, MeetingState.STOPPED),
    ([], True, MeetingState.STOPPED),
])
def test_a_meetings_state_follows_its_streams(states, stopped, expected):
    assert meeting_state(states, stopped) is expected


def _state_literals(path: Path, states: set[str]) -> list[str]:
    """Where a module spells a state: compares with one, passes one as `state=`, or lists
    several (a column header or a folder that happens to share a name is no state)."""
    def named(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in states:
            return node.value
        return None

    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Compare):
            found += [n for n in map(named, [node.left, *node.comparators]) if n]
        elif isinstance(node, ast.keyword) and node.arg == "state" and named(node.value):
            found.append(f"state={named(node.value)}")
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            listed = [n for n in map(named, node.elts) if n]
            found += listed if len(listed) > 1 else []
        elif isinstance(node, ast.AnnAssign) and node.value is not None and named(node.value):
            found.append(f"default {named(node.value)}")
        elif isinstance(node, ast.Call):
            found += [f"argument {n}" for n in map(named, node.args) if n]
        elif isinstance(node, (ast.Assign, ast.Return)) and node.value is not None \
                and named(node.value):
            found.append(f"value {named(node.value)}")
    return found


def test_no_module_but_the_lifecycle_spells_a_stream_state():
    states = {s.value for s in StreamState} | {s.value for s in MeetingState}
    root = Path(rtms_gateway.__file__).parent
    # The simulator plays Zoom (its own words for its own phases); the protocol's session
    # states are the sockets', not the stream's.
    skip = {root / "client" / "lifecycle.py", root / "protocol" / "session.py"}
    spelt = {}
    for path in root.rglob("*.py"):
        if path in skip or "simulator" in path.parts or "migrations" in path.parts:
            continue
        found = _state_literals(path, states)
        if found:
            spelt[str(path.relative_to(root))] = found
    assert spelt == {}


def test_the_check_for_state_literals_finds_them(tmp_path):
    module = tmp_path / "spells.py"
    module.write_text('if outcome.state == "lost": pass\n'
                      'store.mark_stream(stream_id, state="stopped")\n'
                      'ENDED = ("rejected", "refused")\n'
                      'class R:\n    state: str = "connecting"\n'
                      'COLUMNS = ("state", "stopped")\n'
                      'finish(StreamOutcome("lost"))\n'
                      'state = "live"\n')
    states = {s.value for s in StreamState} | {s.value for s in MeetingState}
    assert sorted(_state_literals(module, states)) == [
        "argument lost", "default connecting", "lost", "refused", "rejected", "state=stopped",
        "value live"]
