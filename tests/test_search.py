"""Search: the query language and snippets (pure), and the search itself on SQLite's FTS5
and PostgreSQL's full-text index."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import text

from rtms_gateway.sinks.feed import FeedKind
from rtms_gateway.sinks.search import (
    MAX_QUERY_CHARS,
    PG_VECTOR,
    BadSearch,
    Term,
    fts5_match,
    parse_query,
    snippet,
    tsquery,
)

from .store_cases import chat_msg, seed, seg
from .stores import DATABASES, a_store

pytestmark = pytest.mark.timeout(120)

# ---- the query language --------------------------------------------------------------------


def test_a_query_is_words_phrases_and_prefixes_folded_for_comparison():
    assert parse_query('Budget "Next QUARTER" plan* Zoë Zoe\u0308') == (
        Term(("budget",)), Term(("next", "quarter")), Term(("plan",), prefix=True),
        Term(("zoë",)))
    assert parse_query("budget budget BUDGET") == (Term(("budget",)),)


def test_operators_and_stray_syntax_are_read_as_plain_words():
    assert parse_query("NEAR(alpha beta, 3)") == (
        Term(("near",)), Term(("alpha",)), Term(("beta",)), Term(("3",)))
    assert parse_query('alpha OR -beta col:gamma "unclosed phrase') == (
        Term(("alpha",)), Term(("or",)), Term(("beta",)), Term(("col",)), Term(("gamma",)),
        Term(("unclosed",)), Term(("phrase",)))
    assert parse_query("foo_bar") == (Term(("foo",)), Term(("bar",)))


@pytest.mark.parametrize("q, why", [
    ("", "q is empty"), ("   ", "q is empty"), ('"" * ( ) -', "no words"),
    ("👍 ^ :", "no words"), ("x" * (MAX_QUERY_CHARS + 1), "longer than"),
    (" ".join(f"w{i}" for i in range(40)), "more than 32"),
])
def test_a_query_with_nothing_to_search_for_or_past_the_limits_is_refused(q, why):
    with pytest.raises(BadSearch, match=why):
        parse_query(q)


def test_the_databases_are_handed_only_quoted_words():
    terms = parse_query('can\'t "stop now" go*')
    assert fts5_match(terms) == '"can" "t" "stop now" "go"*'
    assert tsquery(terms) == "'can' & 't' & ('stop' <-> 'now') & 'go':*"


# ---- snippets ------------------------------------------------------------------------------


def test_a_snippet_is_the_text_escaped_with_the_matched_words_marked():
    terms = parse_query('"next quarter" plan*')
    assert snippet("The <b>plans</b> for NEXT quarter & after", terms) == (
        "The &lt;b&gt;<mark>plans</mark>&lt;/b&gt; for <mark>NEXT</mark> <mark>quarter</mark> "
        "&amp; after")
    assert snippet("<script>alert('x')</script> alert", parse_query("alert")) == \
        "&lt;script&gt;<mark>alert</mark>(&#x27;x&#x27;)&lt;/script&gt; <mark>alert</mark>"
    assert snippet("Zoë said hi to zoe", parse_query("ZOE")) == \
        "<mark>Zoë</mark> said hi to <mark>zoe</mark>"
    assert snippet("quarter next", parse_query('"next quarter"')) == "quarter next"  # no phrase


def test_a_long_text_is_cut_around_its_first_match():
    words = [f"w{i}" for i in range(100)]
    words[60] = "needle"
    cut = snippet(" ".join(words), parse_query("needle"))
    assert cut.startswith("…w52 ") and cut.endswith(" w83…") and "<mark>needle</mark>" in cut
    assert snippet(" ".join(words), parse_query("w0")).startswith("<mark>w0</mark> w1")
    assert snippet(" ".join(words), parse_query("w99")).endswith("<mark>w99</mark>")


# ---- search in the store, on both databases -------------------------------------------------


@pytest.fixture(params=DATABASES)
async def store(request, tmp_path):
    async with a_store(request.param, tmp_path) as opened:
        store = opened.store
        for uuid in ("m1", "m2"):
            await seed(store, uuid)
        lines = ["Good morning everyone", "The budget for next quarter is ready",
                 "Any questions? ann@example.com, x<y", "We keep the budget",
                 "<script>alert('quarter')</script> is not a plan"]
        await store.write_batch(segments=[seg(i, "m1", text=line) for i, line in enumerate(lines)])
        slides = chat_msg("m2", text="Budget slides: NEXT QUARTER", sender_name="Bo",
                          sender_user_id=77)
        await store.write_batch(segments=[seg(0, "m2", text="next quarter, the same budget")],
                                chats=[slides])
        yield store


async def test_search_finds_a_phrase_with_its_speaker_time_snippet_and_cursor(store):
    hits = await store.search('"next quarter"', meeting_uuid="m1")
    assert [h.text for h in hits] == ["The budget for next quarter is ready"]
    (hit,) = hits
    said = seg(1, "m1")
    assert (hit.kind, hit.meeting_uuid, hit.user_id, hit.user_name, hit.speaker_inferred,
            hit.time_ms) == (FeedKind.TRANSCRIPT, "m1", said.user_id, said.user_name, False,
                             said.start_time)
    assert hit.snippet == "The budget for <mark>next</mark> <mark>quarter</mark> is ready"
    rows = await store.transcript_page("m1")
    assert rows[1].seq == hit.seq  # the record's own cursor
    (opened,) = await store.transcript_page("m1", after=rows[0].seq, limit=1)  # the one before
    assert opened.record.text == hit.text


async def test_every_meeting_and_kind_is_searched_unless_narrowed(store):
    everywhere = await store.search("budget QUARTER")
    assert {(h.meeting_uuid, h.kind) for h in everywhere} == {
        ("m1", FeedKind.TRANSCRIPT), ("m2", FeedKind.TRANSCRIPT), ("m2", FeedKind.CHAT)}
    (chat,) = await store.search("budget", kinds=[FeedKind.CHAT])
    assert (chat.user_id, chat.user_name, chat.speaker_inferred) == (77, "Bo", False)
    narrowed = await store.search("budget", meeting_uuid="m2", kinds=[FeedKind.TRANSCRIPT])
    assert [h.seq for h in narrowed] == [
        h.seq for h in everywhere if (h.meeting_uuid, h.kind) == ("m2", FeedKind.TRANSCRIPT)]
    assert sorted(h.text for h in await store.search("quart*", meeting_uuid="m1")) == [
        "<script>alert('quarter')</script> is not a plan", "The budget for next quarter is ready"]
    assert await store.search("nowhere") == []


async def test_words_are_found_whatever_punctuation_surrounds_them(store):
    for q in ("ann", "example com", "y", "x"):
        assert [h.text for h in await store.search(q, meeting_uuid="m1")] == [
            "Any questions? ann@example.com, x<y"], q


async def test_markup_in_a_text_comes_back_escaped_in_its_snippet(store):
    (hit,) = await store.search("alert")
    assert hit.text == "<script>alert('quarter')</script> is not a plan"
    assert hit.snippet == \
        "&lt;script&gt;<mark>alert</mark>(&#x27;quarter&#x27;)&lt;/script&gt; is not a plan"
    assert "<script" not in hit.snippet


def _nasty_queries(n: int) -> list[str]:
    fixed = ['"', '""', '"budget', 'budget"', "*", "budget*", "*budget", "NEAR(budget quarter)",
             "NEAR(budget", "budget NEAR/2 quarter", "(budget", "budget)", "((", "budget AND",
             "OR", "NOT budget", "budget -quarter", "col:budget", "^budget", "budget + quarter",
             "'", "''", "\\", "budget\\", "%", "_", "'; DROP TABLE transcript_segments; --",
             ":*", "budget:*", "&", "|", "!", "<->", "budget <-> quarter", "{budget}", "[budget]",
             "\x00", "\U0001F44D", "budget\x00quarter", "\u0301", "ｂｕｄｇｅｔ", "１２３", "²", "Ⅻ",
             "\ud800", "\t\n"]
    rng = random.Random(11)
    alphabet = [*'"*()-+:^\'\\%_&|!<>{}[],. ', "NEAR", "AND", "OR", "NOT", "budget", "quar", "x"]
    return fixed + ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12)))
                    for _ in range(n)]


async def test_no_query_fails_in_the_database(store):
    ran = found = 0
    for q in _nasty_queries(300):
        try:
            hits = await store.search(q)
        except BadSearch:  # nothing to search for: refused before the database
            continue
        ran += 1
        found += bool(hits)
        assert all(h.kind in (FeedKind.TRANSCRIPT, FeedKind.CHAT) for h in hits), q
    assert ran > 150 and found > 20  # most reached the database, and some found something


@pytest.mark.parametrize("database", [p for p in DATABASES if p != "sqlite"])
async def test_postgres_answers_from_its_full_text_index(database, tmp_path):
    async with a_store(database, tmp_path) as opened, opened.store.engine.connect() as conn:
        await conn.execute(text("SET enable_seqscan = off"))  # the planner must be able to use it
        for table, index in (("transcript_segments", "ix_segments_search"),
                             ("chat_messages", "ix_chat_search")):
            plan = "\n".join((await conn.execute(text(
                f"EXPLAIN SELECT 1 FROM {table} r "
                f"WHERE {PG_VECTOR} @@ to_tsquery('simple', 'budget')"))).scalars())
            assert index in plan, plan
