"""Search over transcripts and chat: SQLite FTS5 or PostgreSQL full-text, same answers.

A query is words, `"quoted phrases"` and `prefix*` words, all of which must match, in any
order; case and (on SQLite) accents do not matter. Nothing else in it is syntax: FTS5's
and PostgreSQL's operators (`NEAR`, `OR`, `-`, `:`, parentheses, a stray quote) are read as
plain text, so no query can fail in the database. The query reaches the database only as a
bound parameter, built from words made of letters and digits.

The indexes (made by migrations 0005 and 0009, kept out of the model: `schema.include_name`):
- SQLite: `search_text`, a contentless FTS5 table whose rowid is the sequence number of the
  record's feed item; the store adds a row with each segment it writes, and keeps a chat
  message's current text under its latest item (`sinks.chat`: an edit moves it, a deletion
  takes it out).
- PostgreSQL: GIN indexes on `to_tsvector('simple', ...)` of both tables' text (its first
  N characters, ASCII punctuation as spaces: `PG_VECTOR`), kept by PostgreSQL itself
  ('simple': no stemming, no stop words; the cut keeps a giant text under tsvector's 1 MB).
Only the first `INDEXED_CHARS` characters of a text are searched, on both.

Results come best first (FTS5's bm25, PostgreSQL's ts_rank), each with a snippet that is
safe to put in HTML: the text escaped, the words that matched in `<mark>...</mark>`.
"""

from __future__ import annotations

import html
import re
import string
import unicodedata
from collections.abc import Collection
from typing import Any, NamedTuple

import msgspec
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from ..protocol.errors import RTMSError
from ..protocol.messages import UserId
from .bulk_insert import driver_cursor
from .feed import SEGMENT_KEY, FeedKind
from .schema import SEARCH_TABLE
from .store_rows import from_uid

# Frozen into migration 0005's index expressions (PostgreSQL uses an index only for the
# very expression it was built on): change both together.
INDEXED_CHARS = 100_000
MAX_QUERY_CHARS = 1000
MAX_TERMS = 32
SEARCHABLE = (FeedKind.TRANSCRIPT, FeedKind.CHAT)
# SQLite: a text into the FTS5 table (contentless), under its feed sequence number.
INDEX_TEXT = f"INSERT INTO {SEARCH_TABLE} (rowid, text) VALUES (?, ?)"
SNIPPET_WORDS = 32  # a longer text is cut to this many words around the first match
_LEAD_WORDS = 8  # words shown before the first match

_WORD = re.compile(r"[^\W_]+")  # letters and digits: what both databases call a token
_TERM = re.compile(r'"([^"]*)"|([^\W_]+)(\*?)')


class BadSearch(RTMSError):
    """A search the gateway cannot run: empty, no words in it, or too long."""


class Term(NamedTuple):
    words: tuple[str, ...]  # in lower case; one word, or a phrase's words in order
    prefix: bool = False  # the (single) word may begin a longer one


def fold(word: str) -> str:
    """How the snippet compares words: lower case, accents dropped (as FTS5 does)."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def parse_query(q: str) -> tuple[Term, ...]:
    """The terms of `q`; BadSearch if it has none, or is past the limits."""
    if len(q) > MAX_QUERY_CHARS:
        raise BadSearch(f"q is longer than {MAX_QUERY_CHARS} characters")
    terms: list[Term] = []
    # Composed first: an accent typed as a combining mark stays inside its word.
    for phrase, word, star in _TERM.findall(unicodedata.normalize("NFC", q)):
        words = tuple(w.lower() for w in (_WORD.findall(phrase) if not word else [word]))
        if words:
            terms.append(Term(words, prefix=bool(star)))
    if not terms:
        raise BadSearch("q has no words to search for" if q.strip() else "q is empty")
    if len(terms) > MAX_TERMS:
        raise BadSearch(f"q has more than {MAX_TERMS} words and phrases")
    return tuple(dict.fromkeys(terms))


def fts5_match(terms: tuple[Term, ...]) -> str:
    """An FTS5 MATCH expression: every term a quoted string (implicitly ANDed)."""
    return " ".join('"' + " ".join(t.words) + '"' + ("*" if t.prefix else "") for t in terms)


def tsquery(terms: tuple[Term, ...]) -> str:
    """A PostgreSQL tsquery: `'word' & 'pre':* & ('a' <-> 'b')`."""

    def lexeme(word: str) -> str:  # words are letters and digits; quoted all the same
        return "'" + word.replace("\\", "\\\\").replace("'", "''") + "'"

    parts = []
    for t in terms:
        if len(t.words) > 1:
            parts.append("(" + " <-> ".join(lexeme(w) for w in t.words) + ")")
        else:
            parts.append(lexeme(t.words[0]) + (":*" if t.prefix else ""))
    return " & ".join(parts)


def _matches(tokens: list[str], terms: tuple[Term, ...]) -> set[int]:
    """Which of the text's (folded) tokens the terms match."""
    marked: set[int] = set()
    for term in terms:
        t = Term(tuple(fold(w) for w in term.words), term.prefix)
        n = len(t.words)
        for i in range(len(tokens) - n + 1):
            if n == 1:
                if tokens[i] == t.words[0] or (t.prefix and tokens[i].startswith(t.words[0])):
                    marked.add(i)
            elif tuple(tokens[i:i + n]) == t.words:
                marked.update(range(i, i + n))
    return marked


def snippet(text_: str, terms: tuple[Term, ...]) -> str:
    """`text_` HTML-escaped with the words `terms` match in `<mark>`; a long text cut to
    `SNIPPET_WORDS` words around the first match, the cuts shown as `…`."""
    spans = [(m.start(), m.end()) for m in _WORD.finditer(text_)]
    marked = _matches([fold(text_[a:b]) for a, b in spans], terms)
    first, last = 0, len(spans)
    if len(spans) > SNIPPET_WORDS:
        first = max(0, min(min(marked, default=0) - _LEAD_WORDS, len(spans) - SNIPPET_WORDS))
        last = first + SNIPPET_WORDS
    out = ["…" if first > 0 else ""]
    at = spans[first][0] if first > 0 else 0
    for i in range(first, last):
        a, b = spans[i]
        out.append(html.escape(text_[at:a]))
        word = html.escape(text_[a:b])
        out.append(f"<mark>{word}</mark>" if i in marked else word)
        at = b
    if last < len(spans):
        out.append("…")
    else:
        out.append(html.escape(text_[at:]))
    return "".join(out)


class SearchHit(msgspec.Struct, kw_only=True):
    kind: FeedKind
    seq: int  # the record's place in the feed
    meeting_uuid: str
    user_id: UserId | None  # the speaker, or the chat message's sender
    user_name: str | None
    speaker_inferred: bool
    time_ms: int  # when it was said (a segment's start) or sent
    text: str
    snippet: str


# ---- SQL -----------------------------------------------------------------------------------

# A segment and its item, both ways round (as feed_records.linked says it).
_SEGMENT_ITEM = (f"r.dedup_key = substr(f.item_key, {len(SEGMENT_KEY) + 1}) "
                 f"AND f.item_key = '{SEGMENT_KEY}' || r.dedup_key")
_SOURCES = {  # kind -> (table, how a row finds its item, its speaker's columns, its time, which rows)
    FeedKind.TRANSCRIPT: ("transcript_segments", _SEGMENT_ITEM, "user_id", "user_name",
                          "{inferred}", "COALESCE(r.start_time, r.timestamp)", ""),
    # A message as it stands, at its latest change's item; a deleted one is never found.
    FeedKind.CHAT: ("chat_messages", "f.id = r.last_seq", "sender_user_id", "sender_name", "{never}",
                    "r.timestamp", " AND r.deleted_at_ms IS NULL"),
}
_SQLITE_HITS = ("WITH hits AS (SELECT rowid AS seq, bm25(search_text) AS rank FROM search_text "
                "WHERE search_text MATCH :match)")
# The expression migration 0005's GIN indexes are built on (`r` is the table searched).
# ASCII punctuation becomes spaces first: PostgreSQL's parser would otherwise read text as
# HTML (dropping what sits between `<script>` tags), e-mail addresses, URLs and paths, and
# find words that neither FTS5 nor the snippet see.
_AS_SPACES = ("'" + string.punctuation.replace("'", "''") + "', '"
              + " " * len(string.punctuation) + "'")
PG_VECTOR = f"to_tsvector('simple', translate(left(r.text, {INDEXED_CHARS}), {_AS_SPACES}))"


def _select(kind: FeedKind, pg: bool, meeting: bool) -> str:
    table, linked, user_id, user_name, inferred, time_ms, rows = _SOURCES[kind]
    inferred = inferred.format(inferred="r.speaker_inferred", never="false" if pg else "0")
    columns = (f"'{kind.value}' AS kind, f.id AS seq, r.meeting_uuid, "
               f"r.{user_id} AS user_id, r.{user_name} AS user_name, "
               f"{inferred} AS speaker_inferred, {time_ms} AS time_ms, r.text")
    where = rows + (" AND r.meeting_uuid = :meeting" if meeting else "")
    if pg:
        return (f"SELECT {columns}, ts_rank({PG_VECTOR}, q.q) AS rank "
                f"FROM {table} r JOIN feed_items f ON {linked} "
                f"CROSS JOIN to_tsquery('simple', :tsquery) AS q(q) "
                f"WHERE {PG_VECTOR} @@ q.q{where}")
    return (f"SELECT {columns}, hits.rank FROM hits JOIN feed_items f ON f.id = hits.seq "
            f"JOIN {table} r ON {linked}{where}")


async def run_search(conn: AsyncConnection, terms: tuple[Term, ...], *, pg: bool,
                     meeting_uuid: str | None, kinds: Collection[FeedKind], limit: int
                     ) -> list[SearchHit]:
    """The best `limit` records of `kinds` (of one meeting if given) matching `terms`."""
    chosen = [k for k in SEARCHABLE if k in kinds]
    if not chosen:
        return []
    union = " UNION ALL ".join(_select(k, pg, meeting_uuid is not None) for k in chosen)
    order = "rank DESC, seq" if pg else "rank, seq"  # ts_rank: higher is better; bm25: lower
    sql = f"{'' if pg else _SQLITE_HITS + ' '}{union} ORDER BY {order} LIMIT :limit"
    params: dict[str, Any] = {"limit": limit}
    params.update({"tsquery": tsquery(terms)} if pg else {"match": fts5_match(terms)})
    if meeting_uuid is not None:
        params["meeting"] = meeting_uuid
    rows = (await conn.execute(text(sql), params)).mappings().all()
    return [SearchHit(kind=FeedKind(r["kind"]), seq=r["seq"], meeting_uuid=r["meeting_uuid"],
                      user_id=from_uid(r["user_id"]), user_name=r["user_name"],
                      speaker_inferred=bool(r["speaker_inferred"]), time_ms=r["time_ms"],
                      text=r["text"], snippet=snippet(r["text"], terms)) for r in rows]


def index_texts(conn: Connection, rows: list[tuple[int, str]]) -> None:
    """SQLite: add (feed sequence number, text) rows to the FTS5 table, on the driver's
    cursor (as `bulk_insert` does, for the same reason: this runs with every batch)."""
    if rows:
        with driver_cursor(conn) as cursor:
            cursor.executemany(INDEX_TEXT, [(seq, body[:INDEXED_CHARS]) for seq, body in rows])
