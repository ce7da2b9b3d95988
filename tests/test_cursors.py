"""Cursors: opaque strings for the feed's sequence numbers, strict to read back."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtms_gateway.sinks.cursors import MAX_SEQ, MalformedCursor, format_cursor, parse_cursor


@given(st.integers(0, MAX_SEQ))
def test_a_cursor_reads_back_as_the_number_it_was_made_from(seq):
    assert parse_cursor(format_cursor(seq)) == seq


@given(st.integers(0, MAX_SEQ), st.integers(0, MAX_SEQ))
def test_cursors_have_one_width_and_sort_as_strings_the_way_the_feed_does(a, b):
    assert len(format_cursor(a)) == len(format_cursor(b))
    assert (format_cursor(a) < format_cursor(b)) == (a < b)


@pytest.mark.parametrize("text", [
    "", "c", "1", "42", "c000000000001", "c00000000000001", "C0000000000001", "d0000000000001",
    "c000000000000w", "c00000000000 1", "c0000000000001\n", "c-000000000001", "c0000000000001=",
    format_cursor(MAX_SEQ)[:-1] + "w", "cvvvvvvvvvvvvv", "c٠٠٠٠٠٠٠٠٠٠٠٠١",
])
def test_anything_but_a_cursor_the_gateway_made_is_malformed(text):
    with pytest.raises(MalformedCursor, match="not a cursor this gateway gave out"):
        parse_cursor(text)


def test_the_largest_sequence_number_a_database_holds_is_the_last_cursor():
    assert parse_cursor(format_cursor(MAX_SEQ)) == MAX_SEQ
    with pytest.raises(MalformedCursor):
        parse_cursor(format_cursor(MAX_SEQ + 1))
