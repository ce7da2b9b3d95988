"""The records' shared facts: who counts as nobody."""

import pytest

from rtms_gateway.sinks.records import is_nobody


@pytest.mark.parametrize("user_id", [None, 0, -1, "", "0", "-1"])
def test_the_mixed_audio_user_and_absent_ids_name_nobody(user_id):
    assert is_nobody(user_id)


@pytest.mark.parametrize("user_id", [1, 16778240, "1", "abc", " 0"])
def test_any_other_id_names_somebody(user_id):
    assert not is_nobody(user_id)
