"""The store against a real PostgreSQL server (RTMS_TEST_POSTGRES_URL), each test in a
schema of its own that is dropped afterwards."""

import pytest
from sqlalchemy import text

from rtms_gateway.protocol.errors import RecordRefused, StoreUnavailable
from rtms_gateway.sinks.store import Store

from . import store_cases as cases
from .postgres import URL, admin_connection, needs_postgres, own_schema, target, url_via
from .tcp_proxy import TcpProxy

pytestmark = needs_postgres


@pytest.fixture
async def store():
    async with own_schema() as schema:
        st = await Store.open(URL, pg_schema=schema)
        try:
            yield st
        finally:
            await st.close()


@pytest.mark.parametrize("case", cases.ALL, ids=lambda c: c.__name__)
async def test_store_cases(store, case):
    assert store.engine.dialect.name == "postgresql"
    await case(store)


async def test_migration_0003_brings_an_0002_database_up_to_date():
    async with own_schema() as schema:
        await cases.case_migration_from_0002(URL, schema)


async def test_migration_0005_gives_every_stored_record_its_place_in_the_feed():
    async with own_schema() as schema:
        await cases.case_migration_from_0004(URL, schema)


async def test_migration_0009_folds_stored_chat_rows_into_messages():
    async with own_schema() as schema:
        await cases.case_migration_from_0007(URL, schema)


async def test_a_server_cut_off_is_unavailable_and_nothing_is_lost():
    """Through a proxy the test switches off: open connections cut, new ones refused."""
    proxy = TcpProxy(*target())
    port = await proxy.start()
    async with own_schema() as schema:
        store = await Store.open(url_via(port), pg_schema=schema)
        try:
            await cases.seed(store)
            assert await store.write_batch(segments=[cases.seg(0)]) == 1
            await proxy.switch_off()
            with pytest.raises(StoreUnavailable):  # the pooled connection was cut
                await store.write_batch(segments=[cases.seg(1)])
            with pytest.raises(StoreUnavailable, match="ConnectionRefusedError"):  # a new one is refused
                await store.write_batch(segments=[cases.seg(1)])
            with pytest.raises(StoreUnavailable):
                await store.stream("stream-a")
            assert not await store.ping()
            await proxy.switch_on()
            assert await store.write_batch(segments=[cases.seg(0), cases.seg(1)]) == 1
            assert [s.text for s in await store.transcript(cases.UUID)] == [cases.seg(0).text, cases.seg(1).text]
        finally:
            await store.close()
            await proxy.close()


async def test_a_lock_held_past_the_lock_timeout_is_unavailable(store):
    await cases.seed(store)
    admin = await admin_connection()
    try:
        search_path = await _search_path(store)
        lock = admin.transaction()
        await lock.start()
        await admin.execute(f'LOCK TABLE "{search_path}".transcript_segments IN ACCESS EXCLUSIVE MODE')
        try:
            with pytest.raises(StoreUnavailable, match="55P03"):
                await store.write_batch(segments=[cases.seg(0)])
        finally:
            await lock.rollback()
        assert await store.write_batch(segments=[cases.seg(0)]) == 1
    finally:
        await admin.close()


async def test_a_connection_the_server_terminates_is_unavailable(store):
    await cases.seed(store)
    async with store.engine.connect() as conn:  # the pool's connection, returned afterwards
        pid = (await conn.execute(text("SELECT pg_backend_pid()"))).scalar()
    admin = await admin_connection()
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    with pytest.raises(StoreUnavailable):
        await store.write_batch(segments=[cases.seg(0)])
    assert await store.write_batch(segments=[cases.seg(0)]) == 1  # a new connection


async def test_a_refusal_never_quotes_the_value_outside_its_detail(store):
    await cases.seed(store)
    segment = cases.seg(0)
    segment.user_name = "\ud800 private words"  # asyncpg cannot encode it, and quotes it
    with pytest.raises(RecordRefused) as refused:
        await store.write_batch(segments=[segment])
    assert "private words" not in str(refused.value) and "22" in str(refused.value)
    assert "private words" in refused.value.detail  # kept for the rejected-records file only


async def _search_path(store) -> str:
    async with store.engine.connect() as conn:
        return (await conn.execute(text("SELECT current_schema()"))).scalar()
