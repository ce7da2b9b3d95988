"""The reconnect policy and its backoff, on their own: no socket, no clock but numbers."""

from __future__ import annotations

import pytest

from rtms_gateway.client.lifecycle import StreamOutcome, StreamState
from rtms_gateway.client.policy import Backoff, ReconnectPolicy, Retry, Stop
from rtms_gateway.protocol.constants import (
    MEDIA_RECONNECT_WINDOW_S,
    SIGNALING_RECONNECT_WINDOW_S,
    StatusCode,
    StopReason,
)

S = StreamState
MIDDLE = 0.5  # an injected random() at 0.5 draws each wait at its nominal value


def waits(backoff: Backoff, start: float = 100.0) -> list[float]:
    """Every wait until the window closes, each attempt made when its wait ends."""
    now, out = start, []
    while (delay := backoff.next_delay(now)) is not None:
        out.append(delay)
        now += delay
    return out


def test_waits_double_from_the_first_up_to_the_cap():
    backoff = Backoff(initial=3, cap=30, window=1000, random=lambda: MIDDLE)
    assert waits(backoff)[:7] == [3, 6, 12, 24, 30, 30, 30]


def test_jitter_draws_each_wait_within_a_fifth_either_side():
    low = Backoff(initial=10, cap=10, window=1000, random=lambda: 0.0)
    high = Backoff(initial=10, cap=10, window=1000, random=lambda: 1.0)
    assert low.next_delay(0) == pytest.approx(8.0) and high.next_delay(0) == pytest.approx(12.0)
    draws = iter([0.0, 0.25, 1.0])
    mixed = Backoff(initial=10, cap=10, window=1000, random=lambda: next(draws))
    assert [mixed.next_delay(0) for _ in range(3)] == pytest.approx([8.0, 9.0, 12.0])


def test_the_last_wait_ends_as_the_window_closes_and_then_it_gives_up():
    backoff = Backoff(initial=3, cap=30, window=65, random=lambda: MIDDLE)
    assert waits(backoff) == [3, 6, 12, 24, 20]  # 3+6+12+24 = 45, then 20 to reach 65
    assert backoff.next_delay(165.0) is None


def test_it_never_gives_up_while_the_window_is_open():
    backoff = Backoff(initial=3, cap=30, window=60, random=lambda: 1.0)
    assert backoff.next_delay(0.0) is not None
    assert backoff.next_delay(59.99) == pytest.approx(0.01)
    assert backoff.next_delay(60.0) is None


def test_the_window_counts_from_the_first_wait_and_a_reset_starts_it_over():
    backoff = Backoff(initial=3, cap=30, window=10, random=lambda: MIDDLE)
    assert backoff.next_delay(50.0) == 3 and backoff.next_delay(53.0) == 6
    assert backoff.next_delay(60.0) is None
    backoff.reset()
    assert backoff.next_delay(500.0) == 3 and backoff.next_delay(503.0) == 6


def test_zoom_windows_are_the_default_media_65_s_signaling_60_s():
    policy = ReconnectPolicy()
    assert (MEDIA_RECONNECT_WINDOW_S, SIGNALING_RECONNECT_WINDOW_S) == (65.0, 60.0)
    assert policy.media_backoff().window == 65.0 and policy.stream_backoff().window == 60.0
    assert (policy.initial_s, policy.cap_s) == (3.0, 30.0)


def test_each_backoff_is_new_and_carries_the_policy_numbers():
    policy = ReconnectPolicy(initial_s=0.25, cap_s=1.0, media_window_s=7, signaling_window_s=9,
                             random=lambda: MIDDLE)
    first, second = policy.media_backoff(), policy.media_backoff()
    assert first is not second
    assert waits(first) == [0.25, 0.5, 1, 1, 1, 1, 1, 1, 0.25]
    assert policy.stream_backoff().window == 9


def classify(state: StreamState, **fields: object) -> Retry | Stop:
    policy = ReconnectPolicy(random=lambda: MIDDLE)
    return policy.classify(StreamOutcome(state, **fields), policy.stream_backoff(), 100.0)


def test_a_lost_connection_is_retried_after_the_first_wait():
    assert classify(S.LOST, status_reason="signaling socket closed (1006)") == Retry(3.0, S.LOST)


@pytest.mark.parametrize("reason", [10, 13, 14, 16, 19, 24])
def test_a_stop_for_a_failure_reason_is_retried_after_the_backoff(reason):
    assert classify(S.STOPPED, stop_reason=reason) == Retry(3.0, S.STOPPED)


@pytest.mark.parametrize("reason", [None, 1, 6, 8, 20, 23])
def test_a_normal_stop_ends_the_stream(reason):
    outcome = StreamOutcome(S.STOPPED, stop_reason=reason)
    policy = ReconnectPolicy()
    assert policy.classify(outcome, policy.stream_backoff(), 0.0) == Stop(outcome)


@pytest.mark.parametrize("state", [S.INTERRUPTED, S.MOVED])
def test_a_connection_we_ended_to_connect_again_is_followed_at_once(state):
    assert classify(state) == Retry(0.0, state)


@pytest.mark.parametrize("state", [S.REJECTED, S.REFUSED, S.FAILED, S.CANCELLED, S.DETACHED])
def test_refusals_failures_and_our_own_ends_are_not_retried(state):
    outcome = StreamOutcome(state, status_code=int(StatusCode.INVALID_SIGNATURE))
    policy = ReconnectPolicy()
    assert policy.classify(outcome, policy.stream_backoff(), 0.0) == Stop(outcome)


def test_a_duplicate_signal_request_is_retried_with_the_backoff_inside_zoom_window():
    # Zoom answers 8 while it still holds the socket a blip left behind; its own library
    # retries it. Past the signaling window the stream ends rejected, with Zoom's status.
    policy = ReconnectPolicy(random=lambda: MIDDLE)
    backoff = policy.stream_backoff()
    duplicate = StreamOutcome(S.REJECTED, status_code=int(StatusCode.DUPLICATE_SIGNAL_REQUEST),
                              status_reason="duplicate signal request")
    decisions, now = [], 0.0
    while isinstance(decision := policy.classify(duplicate, backoff, now), Retry):
        assert decision.cause is S.REJECTED
        decisions.append(decision.delay)
        now += decision.delay
    assert decisions == [3, 6, 12, 24, 15] and now == 60.0
    assert decision == Stop(StreamOutcome(
        S.REJECTED, status_code=8,
        status_reason="duplicate signal request; no connection within 60 s"))


@pytest.mark.parametrize("code", [StatusCode.DUPLICATE_SIGNAL_REQUEST, StatusCode.INTERNAL_EXCEPTION,
                                  StatusCode.CHAT_SESSION_KEY_NOT_AVAILABLE, 99])
def test_transient_and_unknown_rejections_are_retried(code):
    assert classify(S.REJECTED, status_code=int(code)) == Retry(3.0, S.REJECTED)


@pytest.mark.parametrize("code", [*range(1, 8), *range(9, 44), 46])
def test_rejections_the_reference_calls_final_stop(code):
    outcome = StreamOutcome(S.REJECTED, status_code=code, status_reason="refused")
    policy = ReconnectPolicy()
    assert policy.classify(outcome, policy.stream_backoff(), 0.0) == Stop(outcome)


def test_a_rejection_without_a_status_stops():
    outcome = StreamOutcome(S.REJECTED)
    policy = ReconnectPolicy()
    assert policy.classify(outcome, policy.stream_backoff(), 0.0) == Stop(outcome)


def test_past_the_window_a_loss_ends_the_stream_lost_with_the_reason():
    policy = ReconnectPolicy(random=lambda: MIDDLE)
    backoff = policy.stream_backoff()
    lost = StreamOutcome(S.LOST, status_reason="signaling socket closed (1006)")
    decisions = []
    now = 0.0
    while isinstance(decision := policy.classify(lost, backoff, now), Retry):
        decisions.append(decision.delay)
        now += decision.delay
    assert decisions == [3, 6, 12, 24, 15] and now == 60.0
    assert decision == Stop(StreamOutcome(S.LOST, status_reason="signaling socket closed (1006); "
                                                               "no connection within 60 s"))


def test_a_failure_stop_past_the_window_ends_stopped_with_its_reason():
    policy = ReconnectPolicy(signaling_window_s=5, random=lambda: MIDDLE)
    backoff = policy.stream_backoff()
    outcome = StreamOutcome(S.STOPPED, stop_reason=int(StopReason.KEEP_ALIVE_TIMEOUT))
    assert policy.classify(outcome, backoff, 0.0) == Retry(3.0, S.STOPPED)
    assert policy.classify(outcome, backoff, 3.0) == Retry(2.0, S.STOPPED)
    final = policy.classify(outcome, backoff, 5.0)
    assert final == Stop(StreamOutcome(S.STOPPED, stop_reason=24,
                                       status_reason="stopped; no connection within 5 s"))


@pytest.mark.parametrize(("reason", "state"), [
    (int(StopReason.SIGNAL_CONNECTION_INTERRUPTED), S.INTERRUPTED),
    (int(StopReason.KEEP_ALIVE_TIMEOUT), S.INTERRUPTED),
    (int(StopReason.MEETING_ENDED), S.STOPPED),
    (int(StopReason.HOST_TRIGGERED), S.STOPPED),
    (None, S.STOPPED),
])
def test_a_stop_from_zoom_interrupts_for_a_failure_and_stops_otherwise(reason, state):
    assert ReconnectPolicy().after_stop(reason) is state
