"""The stream lifecycle table: every legal move, every illegal one refused, and the sets
the rest of the gateway asks for, derived from it."""

from __future__ import annotations

import itertools

import pytest

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


def test_retryable_ends_are_lost_stopped_interrupted_and_moved_the_last_two_at_once():
    assert RETRYABLE == {S.LOST, S.STOPPED, S.INTERRUPTED, S.MOVED}
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
