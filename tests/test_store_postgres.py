"""The store against a real PostgreSQL server (RTMS_TEST_POSTGRES_URL), each test in a
schema of its own that is dropped afterwards."""

import os
import uuid

import pytest

from rtms_gateway.sinks.store import Store, async_url

from . import store_cases as cases

URL = os.environ.get("RTMS_TEST_POSTGRES_URL")
pytestmark = [pytest.mark.postgres, pytest.mark.skipif(not URL, reason="RTMS_TEST_POSTGRES_URL is not set")]


@pytest.fixture
async def store():
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = async_url(URL).replace("postgresql+asyncpg", "postgresql")
    admin = await asyncpg.connect(plain)
    await admin.execute(f'CREATE SCHEMA "{schema}"')
    st = await Store.open(URL, pg_schema=schema)
    try:
        yield st
    finally:
        await st.close()
        await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await admin.close()


@pytest.mark.parametrize("case", [cases.case_round_trip_and_dedup, cases.case_listing_and_states,
                                  cases.case_big_batch_and_concurrent_writers], ids=lambda c: c.__name__)
async def test_store_cases(store, case):
    assert store.engine.dialect.name == "postgresql"
    await case(store)
