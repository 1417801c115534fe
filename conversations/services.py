"""Writes. Every change to conversations goes through here, inside one transaction."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from conversations import histogram, rollups
from conversations.analytics import figures
from conversations.models import Annotation, AnnotationKind, BotVersion, Conversation, Topic


@dataclass(frozen=True)
class ConversationIn:
    """A validated, normalized conversation (`ingest_rules.conversations_from_body`)."""

    session_id: str
    timestamp: datetime
    turns: int
    resolved_by_ai: bool
    topics: tuple[str, ...] = ()
    avg_response_ms: float | None = None
    response_count: int | None = None
    channel: str = ""
    bot_version: str = ""
    ai_cost: Decimal | None = None
    # csat_given tells "no csat field" (keep the stored score) from "csat": null (clear it).
    csat: int | None = None
    csat_given: bool = False
    outcome: str = ""  # models.Outcome, "" when not reported
    escalation_reason: str = ""  # normalized, "" when not reported
    # The keyed hash of the customer id (conversations.customers), never the id; as for csat,
    # customer_given tells "no customer_id field" (keep the stored one) from null (clear it).
    customer_hash: bytes | None = None
    customer_given: bool = False


@dataclass
class StoredConversation:
    """What the database decided for one ingested item: its id, the score it kept."""

    id: int
    csat: int | None
    created: bool
    customer_hash: bytes | None = None


@dataclass
class IngestResult:
    created: int = 0
    updated: int = 0
    received_at: datetime | None = None
    items: dict[str, ConversationIn] = field(default_factory=dict)
    stored: dict[str, StoredConversation] = field(default_factory=dict)

    def conversation(self, session_id: str) -> Conversation:
        """The stored conversation, as the API answers it (built here, not re-read).

        Only for a result of `conversations_ingest(..., details=True)`.
        """
        if session_id not in self.stored:
            raise ValueError(f"No details for {session_id!r}: ingest with details=True to have them.")
        item, stored = self.items[session_id], self.stored[session_id]
        conversation = Conversation(
            id=stored.id,
            session_id=session_id,
            timestamp=item.timestamp,
            turns=item.turns,
            resolved_by_ai=item.resolved_by_ai,
            avg_response_ms=item.avg_response_ms,
            response_ms_bucket=histogram.bucket_of(item.avg_response_ms),
            response_count=item.response_count,
            csat=stored.csat,
            channel=item.channel,
            bot_version=item.bot_version,
            ai_cost=item.ai_cost,
            outcome=item.outcome,
            escalation_reason=item.escalation_reason,
            customer_hash=stored.customer_hash,
            received_at=self.received_at,
        )
        conversation.topic_names = sorted(item.topics)
        return conversation


def _last_per_session(items: Iterable[ConversationIn]) -> list[ConversationIn]:
    """The last item for each session id, sorted by session id.

    One INSERT ... ON CONFLICT may not touch a row twice, and concurrent batches that lock
    rows in different orders can deadlock; sorting by the key avoids both.
    """
    latest: dict[str, ConversationIn] = {}
    for item in items:
        latest[item.session_id] = item
    return [latest[key] for key in sorted(latest)]


def _create_topics(cursor: psycopg.Cursor, names: Iterable[str], created_at: datetime) -> None:
    """Create the topics among these that do not exist yet (run after the session locks).

    A topic created by a concurrent writer that has not committed yet makes this insert wait
    for it (ON CONFLICT), so the statement that follows, with its own snapshot, sees it.
    """
    cursor.execute(
        f"""
        INSERT INTO {Topic._meta.db_table} (name, created_at)
        SELECT n.name, %s FROM unnest(%s::varchar[]) AS n(name)
        WHERE NOT EXISTS (SELECT 1 FROM {Topic._meta.db_table} t WHERE t.name = n.name)
        ORDER BY n.name
        ON CONFLICT (name) DO NOTHING
        """,
        [created_at, sorted(names)],
        prepare=True,
    )


# Releases (issue 17): the first conversation seen with a new bot version makes a release
# annotation at its time, once per version (models.BotVersion says why a table of versions).
# The title of a version's release annotation, in SQL: one definition for the ingest and for
# migration 0017's backfill.
_RELEASE_TITLE_SQL = "'Bot version ' || version || ' released'"


def _releases_sql(first_seen: str) -> str:
    """Record the versions of `first_seen` (a query of (version, first_seen) rows, one per
    version) that are not recorded yet, and annotate exactly those: the rows the insert returns.
    Sorted, so that two batches of the same new versions never wait on each other in a cycle."""
    return f"""
    WITH recorded AS (
        INSERT INTO {BotVersion._meta.db_table} (version, first_seen)
        SELECT version, first_seen FROM ({first_seen}) AS f(version, first_seen)
        ORDER BY version
        ON CONFLICT (version) DO NOTHING
        RETURNING version, first_seen
    )
    INSERT INTO {Annotation._meta.db_table}
        (timestamp, title, kind, channel, bot_version, external_id, created_at)
    SELECT first_seen, {_RELEASE_TITLE_SQL}, %(kind)s, '', version, '', %(created_at)s
    FROM recorded ORDER BY version
    """


_RECORD_RELEASES = _releases_sql(
    "SELECT * FROM unnest(%(versions)s::varchar[], %(first_seen)s::timestamptz[])"
)
_BACKFILL_RELEASES = _releases_sql(
    f"SELECT bot_version, min(timestamp) FROM {Conversation._meta.db_table}"
    " WHERE bot_version <> '' GROUP BY bot_version"
)


def _record_releases(cursor: psycopg.Cursor, releases: Sequence[tuple[str, datetime]], now: datetime) -> None:
    """Record these (version, earliest timestamp in the batch) pairs and annotate the new ones
    (run after the topics, before the write: every writer takes its locks in that order).

    A version a concurrent writer has inserted but not committed makes this insert wait for
    it, then insert nothing (ON CONFLICT): one annotation per version, whoever commits first.
    """
    cursor.execute(
        _RECORD_RELEASES,
        {
            "versions": [version for version, _ in releases],
            "first_seen": [first_seen for _, first_seen in releases],
            "kind": AnnotationKind.RELEASE.value,
            "created_at": now,
        },
        prepare=False,  # a new version is rare: not worth a prepared statement per connection
    )


# The bot versions this process knows are recorded in BotVersion: a batch that names only
# these (nearly every batch) costs one set lookup per conversation and no statement. Grows
# only once the transaction that recorded a version has committed (`transaction.on_commit`),
# so that a version whose insert rolled back is tried again. It only saves work: what makes a
# version's annotation exactly once is the insert's ON CONFLICT. "" (no version) is no release.
# Replaced, never changed in place, so that writer threads read it without a lock. (A database
# emptied under a running process, as a test's flush does, needs `forget_recorded_versions`.)
_recorded_versions: frozenset[str] = frozenset({""})


def _versions_recorded(versions: Iterable[str]) -> None:
    global _recorded_versions
    _recorded_versions = _recorded_versions | frozenset(versions)


def forget_recorded_versions() -> None:
    """Forget which bot versions this process saw recorded (after the database was emptied)."""
    global _recorded_versions
    _recorded_versions = frozenset({""})


def _new_versions(batch: list[ConversationIn]) -> tuple[tuple[str, datetime], ...]:
    """The batch's versions this process has not seen recorded, each with its earliest
    timestamp in the batch, sorted by version."""
    first_seen: dict[str, datetime] = {}
    for item in batch:
        if item.bot_version not in _recorded_versions:
            earliest = first_seen.get(item.bot_version)
            if earliest is None or item.timestamp < earliest:
                first_seen[item.bot_version] = item.timestamp
    return tuple(sorted(first_seen.items()))


def bot_versions_backfill() -> int:
    """Record every bot version the stored conversations name, at its earliest conversation,
    and annotate its release (migration 0017); versions recorded already stay as they are.
    Returns how many were new. One scan of the conversations."""
    with connection.cursor() as cursor:
        cursor.execute(
            _BACKFILL_RELEASES, {"kind": AnnotationKind.RELEASE.value, "created_at": timezone.now()}
        )
        return cursor.rowcount


@dataclass(frozen=True)
class _Native:
    """A write statement in PostgreSQL's own `$n` placeholders, with the names of its
    parameters in order: psycopg sends it as it is (RawCursor), where with `%(name)s`
    placeholders it parses the text again at every execution. These statements are too long
    for psycopg's cache of parsed queries (4 kB), and parsing one took a quarter of a single
    POST's CPU (docs/benchmarks.md, "Write statements in native placeholders")."""

    text: str
    names: tuple[str, ...]

    @classmethod
    def of(cls, statement: str) -> _Native:
        names: list[str] = []

        def placeholder(match: re.Match) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        text = re.sub(r"%\((\w+)\)s", placeholder, statement)
        if re.search(r"%(?!%)", text.replace("%%", "")):
            raise ValueError("A statement for _Native takes only %(name)s placeholders.")
        return cls(text=text.replace("%%", "%"), names=tuple(names))

    def values(self, params: dict) -> list:
        return [params[name] for name in self.names]


def _execute(
    sql: _Native,
    params: dict,
    *,
    prepare: bool,
    session_ids: Iterable[str],
    topics: Iterable[str] = (),
    customers: Iterable[bytes] = (),
    releases: Sequence[tuple[str, datetime]] = (),
) -> list[tuple]:
    """Lock the sessions and their customers, create missing topics, record new bot versions
    (`releases`: `_record_releases`) and run one of the write statements below, as one
    transaction, in one round trip; returns the write's rows.

    The statements go to PostgreSQL together (psycopg's pipeline mode), which still runs
    them one after the other, each with its own snapshot: the write starts once the locks
    are held. Called outside any transaction (an API request, an import writer), the BEGIN
    and the COMMIT travel in the same pipeline: the rows a batch updates (the rollup rows of
    its hours, which other writers update too) stay locked only until the commit is flushed,
    not also while the result travels to Python and the COMMIT comes back. Inside a transaction
    (`transaction.atomic`, a purge batch, a test), the statements run in a savepoint of it
    and the caller commits.

    The write binds server-side, and with `prepare` a prepared statement is kept per
    connection: planning these statements takes several times what a single conversation
    takes to write. Batches are planned each time instead (prepare=False), with the real
    array sizes: a plan for one conversation suits 1,000 badly. The lock and topic
    statements are always prepared: planning them took longer than running them
    (docs/benchmarks.md, "Prepared ingest statements").
    """
    connection.ensure_connection()
    if not connection.get_autocommit():
        with transaction.atomic():
            return _pipeline(
                sql,
                params,
                prepare=prepare,
                session_ids=session_ids,
                topics=topics,
                customers=customers,
                releases=releases,
            )
    try:
        return _pipeline(
            sql,
            params,
            prepare=prepare,
            session_ids=session_ids,
            topics=topics,
            customers=customers,
            releases=releases,
            commit=True,
        )
    except BaseException:
        # The error aborted the transaction and skipped the COMMIT: end it here.
        pgconn = connection.connection
        if not pgconn.closed and pgconn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            try:
                pgconn.execute("ROLLBACK")
            except psycopg.Error:
                # Broken: Django checks the connection before its next use and replaces it.
                connection.errors_occurred = True
        raise


def _pipeline(
    sql: _Native,
    params: dict,
    *,
    prepare: bool,
    session_ids: Iterable[str],
    topics: Iterable[str],
    customers: Iterable[bytes],
    releases: Sequence[tuple[str, datetime]] = (),
    commit=False,
) -> list[tuple]:
    topics = set(topics)
    session_ids = list(session_ids)
    # wrap_database_errors: the driver's errors become Django's (IntegrityError, ...), as
    # for every other query, including those that surface when the pipeline is read.
    with (
        connection.wrap_database_errors,
        psycopg.RawCursor(connection.connection) as cursor,
        psycopg.Cursor(connection.connection) as side_cursor,  # BEGIN, locks, topics, COMMIT
    ):
        with connection.connection.pipeline():
            if commit:
                side_cursor.execute("BEGIN")
            _lock_sessions(side_cursor, session_ids)
            _lock_customers(side_cursor, session_ids, customers, prepare=prepare)
            if topics:
                _create_topics(side_cursor, topics, timezone.now())
            if releases:
                _record_releases(side_cursor, releases, timezone.now())
            if commit and not prepare:
                # The planner cannot tell how many rows a batch's arrays and the joins of its
                # CTEs give, guesses a hundred times too many, and sorts them to aggregate (a
                # hash table that size would not fit in work_mem); there are a few thousand,
                # which hash aggregates and joins take in about 8% less time for the whole
                # statement (medians of alternated runs, a batch of 1,000 lines at 500,000
                # stored). For this statement only: its transaction ends with it. (A statement
                # prepared and kept, or run in a caller's transaction, is planned as before.)
                side_cursor.execute("SET LOCAL enable_sort = off")
            cursor.execute(sql.text, sql.values(params), prepare=prepare)
            if commit:
                side_cursor.execute("COMMIT")
        # Read once the pipeline is closed: its one sync brought every result back.
        return cursor.fetchall()  # every write statement here returns rows


# Advisory-lock namespace of this app ("SA"), so our locks never meet another app's.
_SESSION_LOCK_CLASS = 0x5341


def _lock_sessions(cursor: psycopg.Cursor, session_ids: Iterable[str]) -> None:
    """Serialize every writer of these session ids until the transaction ends.

    Row locks cannot do this for a session that does not exist yet: two requests posting
    the same new session would both miss it, both insert (one then updating the other's
    row), and count both in the rollups. Advisory locks on a hash of the id (PostgreSQL's
    hashtext), taken in sorted order (so two batches never wait on each other in a cycle),
    close that gap. A hash collision only makes two unrelated sessions wait for each other.

    The statements that follow read the stored rows afresh (READ COMMITTED: a snapshot per
    statement), so they see whatever the writer we waited for committed. Called by `_execute`.
    """
    cursor.execute(
        "SELECT pg_advisory_xact_lock(%s, key) FROM ("
        " SELECT DISTINCT hashtext(id) AS key FROM jsonb_array_elements_text(%s::jsonb) AS id ORDER BY 1"
        ") AS keys",
        [_SESSION_LOCK_CLASS, json.dumps(list(session_ids))],
        prepare=True,
    )


# Advisory-lock namespace of customers ("SC"): the writers of one customer's conversations.
_CUSTOMER_LOCK_CLASS = 0x5343


def _lock_customers(
    cursor: psycopg.Cursor, session_ids: list[str], customers: Iterable[bytes], *, prepare: bool
) -> None:
    """Serialize the writers of these customers (`customers`, and those the sessions are
    stored with) until the transaction ends: a write changes whether the customer's earlier
    conversations count as followed up (`_FOLLOW_UPS`), which it reads from the customer's
    other conversations; two writers of one customer must not each miss the other's.

    Run after the session locks, which keep each session's stored customer from changing
    under this statement. Keys are the hash's first 4 bytes, in sorted order (no cycle
    between two writers); a collision only makes two customers wait for each other. Every
    writer takes session locks first, then customer locks, and none waits for a session
    while holding a customer, so the two kinds cannot deadlock either.

    Prepared only with the write (`prepare`): a batch plans it each time. Prepared, a
    connection kept the plan it made while the table was nearly empty, a sequential scan
    comparing every row with each of the batch's 1,000 session ids; in some imports that
    took most of the CPU (docs/benchmarks.md, "Customer locks planned per batch").
    """
    cursor.execute(
        "SELECT pg_advisory_xact_lock(%s, key) FROM ("
        " SELECT DISTINCT ('x' || encode(substring(h FROM 1 FOR 4), 'hex'))::bit(32)::integer AS key"
        " FROM (SELECT unnest(%s::bytea[]) AS h UNION ALL SELECT customer_hash"
        f" FROM {Conversation._meta.db_table} WHERE session_id = ANY(%s::varchar[])) AS x"
        " WHERE h IS NOT NULL ORDER BY 1"
        ") AS keys",
        [_CUSTOMER_LOCK_CLASS, _array(sorted(set(customers))), _array(session_ids)],
        prepare=prepare,
    )


# The stored versions of the conversations whose ids a statement's `ids` CTE lists.
_CHANGE_VALUES = ", ".join(rollups.CHANGE_COLUMNS[1:])
_OLD = f"""
    old AS (
        SELECT id, session_id, {_CHANGE_VALUES}
        FROM conversations_conversation WHERE session_id IN (SELECT session_id FROM ids)
    )"""
_IDS = "ids AS (SELECT unnest(%(session_ids)s::varchar[]) AS session_id)"


# The columns a change carries that a post does not send or the statement does not work out
# (a per-row flag that other writes keep): the stored conversation's, kept by a re-post (NULL
# for a new one). None today.
_POSTED = {
    "timestamp", "channel", "bot_version", "resolved_by_ai", "turns", "csat", "ai_cost",
    "avg_response_ms", "response_ms_bucket", "topic_ids", "outcome", "escalation_reason",
    "customer_hash", "followed_up",
}  # fmt: skip
_KEPT_COLUMNS = "".join(f", o.{column}" for column in rollups.CHANGE_COLUMNS[1:] if column not in _POSTED)


def _changed_values(**replaced: str) -> str:
    """The values of a change's columns (after its sign), some `replaced` by other SQL."""
    return ", ".join(replaced.get(column, column) for column in rollups.CHANGE_COLUMNS[1:])


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# How each type is written in an array literal.
_ARRAY_ELEMENT = {  # bool before int: a bool is an int too
    bool: lambda value: "t" if value else "f",
    str: _quoted,
    int: str,
    float: repr,  # the shortest text that reads back as the same double
    Decimal: str,
    datetime: lambda value: '"' + value.isoformat() + '"',
    bytes: lambda value: '"\\\\x' + value.hex() + '"',  # bytea's hex form, its \\ escaped
    type(None): lambda value: "NULL",
}


def _array(values: Iterable) -> str:
    """A PostgreSQL array literal of these values (str, int, float, bool, Decimal, datetime
    or None), e.g. `{"a\\"b",NULL}`; cast to its type in SQL (`%(name)s::integer[]`).

    Written by hand because it is the hot path of a batch: psycopg dumps a list element by
    element in Python, while this is one join per array
    (docs/benchmarks.md, "Array literals by hand"). Strings are quoted with `"` and `\\`
    escaped, which is all PostgreSQL's array syntax asks inside double quotes.

    A column of one type takes a short cut (`_FAST_ARRAYS`): one join, without a function
    call per value.
    """
    values = values if isinstance(values, list) else list(values)
    kinds = set(map(type, values))
    if len(kinds) == 1:
        fast = _FAST_ARRAYS.get(kinds.pop())
        literal = fast(values) if fast else None
        if literal is not None:
            return literal
    writers = _ARRAY_ELEMENT
    return (
        "{"
        + ",".join([(writers.get(type(value)) or _subclass_writer(value))(value) for value in values])
        + "}"
    )


def _strings(values: list[str]) -> str | None:
    """Strings that need no escaping, quoted all at once; None if any has a quote or a backslash."""
    joined = '","'.join(values)
    if joined.count('"') != 2 * (len(values) - 1) or "\\" in joined:
        return None  # escape them one by one
    return '{"' + joined + '"}'


_FAST_ARRAYS: dict[type, Callable[[list], str | None]] = {
    str: _strings,
    int: lambda values: "{" + ",".join(map(str, values)) + "}",
    bool: lambda values: "{" + ",".join(["t" if value else "f" for value in values]) + "}",
    float: lambda values: "{" + ",".join(map(repr, values)) + "}",
    datetime: lambda values: '{"' + '","'.join([value.isoformat() for value in values]) + '"}',
    type(None): lambda values: "{" + ",".join(["NULL"] * len(values)) + "}",
}


def _subclass_writer(value) -> Callable[[object], str]:
    """How to write a subclass of a supported type (a SafeString, an IntEnum...)."""
    for kind, write in _ARRAY_ELEMENT.items():
        if isinstance(value, kind):
            return write
    raise TypeError(f"No array literal for {type(value).__name__}: {value!r}")


# Repeat contacts. A conversation is followed up when another of its customer's ended after it
# and at most the repeat-contact window W after it (`%(repeat_window)s`). A conversation that
# arrives, leaves or moves at time t (`positions`: where the statement's conversations were
# and will be) changes only the flags of the customer's conversations in [t − W, t), and those
# depend only on conversations in (t − W, t + W]: so the statement reads the customer's stored
# conversations within W of each position (`nearby`, by conversation_customer_idx; whatever
# the customer's history, a write reads only what lies near it), adds the arriving ones
# (`arriving`, defined by the statement), works out every flag of that timeline with one
# window count, and rewrites the flags that changed in [t − W, t), their rollup changes with
# them (`refollowed`: old contribution out, new in; in the statement's `changes`). The
# arriving conversations' own flags are in `follow_flags` (their follow-ups lie in (t, t + W],
# which their own position covers). In the statement that writes the conversations, so a
# read never sees one without the other; `_lock_customers` keeps two writers of one customer
# from missing each other's conversations.
_NEARBY_VALUES = ", ".join(f"c.{column}" for column in rollups.CHANGE_COLUMNS[1:])
_FOLLOW_UPS = f"""
    positions AS (
        SELECT customer_hash, timestamp FROM old WHERE customer_hash IS NOT NULL
        UNION
        SELECT customer_hash, timestamp FROM arriving
    ),
    islands AS (
        -- A customer's positions at most 2W apart, one after the other: what lies within W
        -- of one of them is what lies within W of the island's first and last.
        SELECT customer_hash, min(timestamp) AS first, max(timestamp) AS last
        FROM (
            SELECT customer_hash, timestamp,
                   count(*) FILTER (WHERE gap) OVER (PARTITION BY customer_hash ORDER BY timestamp) AS island
            FROM (
                SELECT customer_hash, timestamp,
                       timestamp - lag(timestamp) OVER (PARTITION BY customer_hash ORDER BY timestamp)
                           > 2 * %(repeat_window)s::interval AS gap
                FROM positions
            ) p
        ) p
        GROUP BY customer_hash, island
    ),
    nearby AS (
        -- LATERAL and OFFSET 0 (which keeps the planner from flattening it into a join): one
        -- index range scan per island, whatever it guesses of their number (as a join, it
        -- hashed the whole table for a batch of 1,000). Islands of a customer are more than
        -- 2W apart: no conversation is found twice.
        SELECT c.id, c.session_id, {_NEARBY_VALUES}
        FROM islands i
        CROSS JOIN LATERAL (
            SELECT * FROM conversations_conversation x
            WHERE x.customer_hash = i.customer_hash
              AND x.timestamp >= i.first - %(repeat_window)s::interval
              AND x.timestamp <= i.last + %(repeat_window)s::interval
            OFFSET 0
        ) c
        WHERE c.session_id NOT IN (SELECT session_id FROM ids)
    ),
    timeline AS (
        SELECT session_id, customer_hash, timestamp FROM nearby
        UNION ALL
        SELECT session_id, customer_hash, timestamp FROM arriving
    ),
    follow_flags AS (
        SELECT session_id, count(*) OVER (
            PARTITION BY customer_hash ORDER BY timestamp
            RANGE BETWEEN interval '1 microsecond' FOLLOWING AND %(repeat_window)s::interval FOLLOWING
        ) > 0 AS followed_up
        FROM timeline
    ),
    refollowed AS (
        SELECT n.*, f.followed_up AS new_followed_up
        FROM nearby n JOIN follow_flags f USING (session_id)
        WHERE f.followed_up <> n.followed_up
          AND EXISTS (
              SELECT FROM positions p
              WHERE p.customer_hash = n.customer_hash
                AND n.timestamp >= p.timestamp - %(repeat_window)s::interval AND n.timestamp < p.timestamp
          )
    ),
    refollowed_written AS (
        UPDATE conversations_conversation c SET followed_up = r.new_followed_up
        FROM refollowed r WHERE c.id = r.id
    )"""
# The rollup changes of `refollowed`, in a statement's `changes` CTE.
_REFOLLOWED_CHANGES = f"""
        SELECT -1, {_CHANGE_VALUES} FROM refollowed
        UNION ALL
        SELECT 1, {_changed_values(followed_up="new_followed_up")} FROM refollowed"""


# One statement: read the stored versions, upsert the conversations (their topic ids with
# them), and move the rollups from the old contributions to the new ones. Parameters are parallel
# arrays (one element per conversation), the topics as (session id, topic name) pairs, each
# array sent as one array literal (`_array`): cheaper than psycopg's own list dumping in
# Python or a JSON document taken apart in the server
# (docs/benchmarks.md, "Array literals by hand").
def _ingest_sql(changes_to: str, select: str) -> str:
    return f"""
WITH
    new AS (
        SELECT * FROM unnest(
            %(session_ids)s::varchar[], %(timestamps)s::timestamptz[], %(turns)s::integer[],
            %(resolved_by_ai)s::boolean[], %(avg_response_ms)s::double precision[],
            %(response_count)s::integer[], %(response_ms_bucket)s::smallint[], %(csat)s::smallint[],
            %(csat_given)s::boolean[], %(channel)s::varchar[], %(bot_version)s::varchar[],
            %(ai_cost)s::numeric[], %(outcome)s::varchar[], %(escalation_reason)s::varchar[],
            %(customer_hash)s::bytea[], %(customer_given)s::boolean[]
        ) AS n(session_id, timestamp, turns, resolved_by_ai, avg_response_ms, response_count,
               response_ms_bucket, csat, csat_given, channel, bot_version, ai_cost, outcome,
               escalation_reason, posted_customer_hash, customer_given)
    ),
    -- Each conversation's topic ids, sorted. Every topic exists by now (_create_topics ran
    -- before this statement).
    new_topics AS (
        SELECT nt.session_id, array_agg(DISTINCT t.id ORDER BY t.id) AS topic_ids
        FROM unnest(%(topic_session_ids)s::varchar[], %(topic_names)s::varchar[]) AS nt(session_id, name)
        JOIN conversations_topic t ON t.name = nt.name
        GROUP BY 1
    ),
    ids AS (SELECT session_id FROM new),
    {_OLD},
    merged_values AS (
        -- An item without a csat (customer_id) field keeps the stored score (customer; see
        -- conversations_ingest).
        SELECT n.*, o.id AS old_id,
               CASE WHEN n.csat_given OR o.id IS NULL THEN n.csat ELSE o.csat END AS stored_csat,
               CASE WHEN n.customer_given OR o.id IS NULL THEN n.posted_customer_hash
                    ELSE o.customer_hash END AS customer_hash,
               coalesce(nt.topic_ids, '{{}}') AS topic_ids{_KEPT_COLUMNS}
        FROM new n LEFT JOIN old o USING (session_id) LEFT JOIN new_topics nt USING (session_id)
    ),
    arriving AS (
        SELECT session_id, customer_hash, timestamp FROM merged_values WHERE customer_hash IS NOT NULL
    ),
    {_FOLLOW_UPS},
    merged AS (
        SELECT m.*, coalesce(f.followed_up, false) AS followed_up
        FROM merged_values m LEFT JOIN follow_flags f USING (session_id)
    ),
    changes AS (
        SELECT -1 AS sign, {_CHANGE_VALUES} FROM old
        UNION ALL
        SELECT 1, {_changed_values(csat="stored_csat")} FROM merged
        UNION ALL{_REFOLLOWED_CHANGES}
    ),
    {changes_to},
    -- Last in the list, so it runs first when the main query does not read it (the rollup
    -- CTEs above say why): the rollup rows, which other writers wait for, are locked after it.
    upserted AS (
        INSERT INTO conversations_conversation AS t (
            session_id, timestamp, turns, resolved_by_ai, avg_response_ms, response_count,
            response_ms_bucket, csat, channel, bot_version, ai_cost, topic_ids, outcome,
            escalation_reason, customer_hash, followed_up, received_at)
        SELECT session_id, timestamp, turns, resolved_by_ai, avg_response_ms, response_count,
               response_ms_bucket, stored_csat, channel, bot_version, ai_cost, topic_ids, outcome,
               escalation_reason, customer_hash, followed_up, %(received_at)s
        FROM merged ORDER BY session_id
        ON CONFLICT (session_id) DO UPDATE SET
            timestamp = EXCLUDED.timestamp, turns = EXCLUDED.turns,
            resolved_by_ai = EXCLUDED.resolved_by_ai, avg_response_ms = EXCLUDED.avg_response_ms,
            response_count = EXCLUDED.response_count, response_ms_bucket = EXCLUDED.response_ms_bucket,
            csat = EXCLUDED.csat, channel = EXCLUDED.channel, bot_version = EXCLUDED.bot_version,
            ai_cost = EXCLUDED.ai_cost, topic_ids = EXCLUDED.topic_ids, outcome = EXCLUDED.outcome,
            escalation_reason = EXCLUDED.escalation_reason, customer_hash = EXCLUDED.customer_hash,
            followed_up = EXCLUDED.followed_up, received_at = EXCLUDED.received_at
        RETURNING t.id, t.session_id
    )
{select}"""


# What the statement answers: per conversation, its id, the score it kept and whether it is
# new (the API's reply to a single conversation); or only how many were new and replaced
# (batches: rows back would cost the import time for nothing;
# docs/benchmarks.md, "Batch replies: counts only").
_ROWS = """
SELECT m.session_id, u.id, m.stored_csat, m.old_id IS NULL, m.customer_hash
FROM merged m JOIN upserted u USING (session_id)
"""
_COUNTS = """
SELECT count(*) FILTER (WHERE old_id IS NULL), count(*) FILTER (WHERE old_id IS NOT NULL) FROM merged
"""
# (details, deferred): the statement. Deferred: the rollup changes go to RollupDelta.
_INGEST_STATEMENTS = {
    (details, deferred): _Native.of(
        _ingest_sql(
            rollups.CHANGES_TO_DELTAS if deferred else rollups.CHANGES_TO_ROLLUPS,
            _ROWS if details else _COUNTS,
        )
    )
    for details in (False, True)
    for deferred in (False, True)
}


# Up to this many conversations, ingestion uses the prepared statement (see `_execute`) and
# leaves the rollups to `rollups.fold` (RollupDelta: concurrent single POSTs all updated the
# current hour's rollup rows, one after the other;
# docs/benchmarks.md, "Rollup deltas for small writes"). Larger batches update the rollups
# themselves: summed first, a batch's rollup changes are few per conversation.
_SMALL_BATCH_MAX = 10


def conversations_ingest(*, items: Sequence[ConversationIn], details: bool = False) -> IngestResult:
    """Store conversations, replacing any with the same session id (idempotent).

    A re-post replaces every field of the stored conversation, except that an item
    without a `csat` field keeps the stored score (surveys arrive after the conversation,
    and a retried post must not wipe a score set in the meantime), and one without a
    `customer_id` keeps the stored customer. Whether the customer's conversations were
    followed up changes with it (`_FOLLOW_UPS`).

    The result counts the new and replaced conversations; with `details`, it also holds
    what was stored for each (`IngestResult.conversation`).
    """
    return conversations_ingest_write(conversations_ingest_prepare(items=items, details=details))


@dataclass(frozen=True)
class PreparedIngest:
    """A batch made ready to write by `conversations_ingest_prepare`: the write statement's
    parameters, built in Python, without touching the database."""

    items: dict[str, ConversationIn]  # the last item per session id, sorted by session id
    received_at: datetime
    details: bool
    params: dict = field(repr=False)
    topics: frozenset[str] = frozenset()
    customers: frozenset[bytes] = frozenset()
    # The versions to record, with their earliest timestamps (`_new_versions`): empty unless
    # the batch names a version this process has not seen recorded.
    releases: tuple[tuple[str, datetime], ...] = ()


def conversations_ingest_prepare(*, items: Sequence[ConversationIn], details: bool = False) -> PreparedIngest:
    """The first half of `conversations_ingest`: all of its Python work, none of its queries.

    `import_jsonl` prepares the next batches in its parsing thread while its writers wait on
    PostgreSQL, so that a writer's connection is sent its next statement as soon as the
    last one ends, not left idle while its writer builds it
    (docs/benchmarks.md, "Import: batches prepared in the parsing thread").
    """
    batch = _last_per_session(items)
    received_at = timezone.now()
    columns = {
        "session_ids": [item.session_id for item in batch],
        "timestamps": [item.timestamp for item in batch],
        "turns": [item.turns for item in batch],
        "resolved_by_ai": [item.resolved_by_ai for item in batch],
        "avg_response_ms": [item.avg_response_ms for item in batch],
        "response_count": [item.response_count for item in batch],
        "response_ms_bucket": [histogram.bucket_of(item.avg_response_ms) for item in batch],
        "csat": [item.csat for item in batch],
        "csat_given": [item.csat_given for item in batch],
        "channel": [item.channel for item in batch],
        "bot_version": [item.bot_version for item in batch],
        "ai_cost": [item.ai_cost for item in batch],
        "outcome": [item.outcome for item in batch],
        "escalation_reason": [item.escalation_reason for item in batch],
        "customer_hash": [item.customer_hash for item in batch],
        "customer_given": [item.customer_given for item in batch],
        "topic_session_ids": [item.session_id for item in batch for _ in item.topics],
        "topic_names": [name for item in batch for name in item.topics],
    }
    params = {name: _array(values) for name, values in columns.items()}
    # A set lookup per conversation: this is on the import's hot path.
    releases = () if _recorded_versions.issuperset(columns["bot_version"]) else _new_versions(batch)
    params["received_at"] = received_at
    params["repeat_window"] = figures.repeat_contact_window()
    return PreparedIngest(
        items={item.session_id: item for item in batch},
        received_at=received_at,
        details=details,
        params=params,
        topics=frozenset(name for item in batch for name in item.topics),
        customers=frozenset(item.customer_hash for item in batch if item.customer_hash is not None),
        releases=releases,
    )


def conversations_ingest_write(prepared: PreparedIngest) -> IngestResult:
    """The second half of `conversations_ingest`: write a prepared batch (one transaction)."""
    result = IngestResult(received_at=prepared.received_at)
    if not prepared.items:
        return result
    result.items = prepared.items
    small = len(prepared.items) <= _SMALL_BATCH_MAX
    rows = _execute(
        _INGEST_STATEMENTS[prepared.details, small],
        prepared.params,
        prepare=small,
        session_ids=prepared.items,
        topics=prepared.topics,
        customers=prepared.customers,
        releases=prepared.releases,
    )
    if small:
        rollups.deltas_written()
    if prepared.releases:
        # At once in autocommit (the statements' own COMMIT has gone through); else when the
        # caller's transaction commits, and never if it rolls back.
        new_versions = [version for version, _ in prepared.releases]
        transaction.on_commit(lambda: _versions_recorded(new_versions))

    if not prepared.details:
        [(result.created, result.updated)] = rows
        return result
    for session_id, pk, csat, created, customer_hash in rows:
        result.stored[session_id] = StoredConversation(
            id=pk, csat=csat, created=created, customer_hash=customer_hash
        )
        if created:
            result.created += 1
        else:
            result.updated += 1
    return result


_SET_CSAT_SQL = _Native.of(f"""
WITH
    {_IDS},
    {_OLD},
    updated AS (
        UPDATE conversations_conversation c SET csat = %(csat)s
        FROM old WHERE c.id = old.id RETURNING c.id
    ),
    changes AS (
        SELECT -1 AS sign, {_CHANGE_VALUES} FROM old
        UNION ALL
        SELECT 1, {_changed_values(csat="%(csat)s::smallint")} FROM old
    ),
    {rollups.CHANGES_TO_DELTAS}
SELECT id FROM updated
""")

_DELETE_SQL = _Native.of(f"""
WITH
    -- Read after the writers' locks are taken: a session re-posted meanwhile with a later
    -- timestamp no longer qualifies for `ended_before`.
    ids AS (
        SELECT session_id FROM conversations_conversation
        WHERE session_id = ANY(%(session_ids)s::varchar[])
          AND timestamp < coalesce(%(ended_before)s::timestamptz, 'infinity')
    ),
    {_OLD},
    deleted AS (DELETE FROM conversations_conversation WHERE id IN (SELECT id FROM old) RETURNING id),
    arriving AS (SELECT session_id, customer_hash, timestamp FROM old WHERE false),
    {_FOLLOW_UPS},
    changes AS (
        SELECT -1 AS sign, {_CHANGE_VALUES} FROM old
        UNION ALL{_REFOLLOWED_CHANGES}
    ),
    {rollups.CHANGES_TO_ROLLUPS}
SELECT count(*) FROM deleted
""")


def conversation_set_csat(*, session_id: str, csat: int | None) -> None:
    """Set (or clear, with None) the CSAT of a stored conversation.

    Raises Conversation.DoesNotExist for an unknown session id.
    """
    params = {"session_ids": [session_id], "csat": csat}
    if not _execute(_SET_CSAT_SQL, params, prepare=True, session_ids=[session_id]):
        raise Conversation.DoesNotExist(f"No conversation with session_id {session_id!r}.")
    rollups.deltas_written()


def conversations_delete(*, session_ids: Sequence[str], ended_before: datetime | None = None) -> int:
    """Delete conversations and take their contributions out of the rollups; returns how many.

    With `ended_before`, only those that still end before it once their writers' locks are
    held (data retention: a conversation re-posted meanwhile with a newer timestamp stays).
    """
    if not session_ids:
        return 0
    params = {
        "session_ids": list(session_ids),
        "ended_before": ended_before,
        "repeat_window": figures.repeat_contact_window(),
    }
    [(deleted,)] = _execute(_DELETE_SQL, params, prepare=False, session_ids=session_ids)
    return deleted


@dataclass(frozen=True)
class AnnotationIn:
    """A validated annotation (`annotation_rules.annotation_from_body`); "" means unset."""

    timestamp: datetime
    title: str
    kind: str  # models.AnnotationKind
    channel: str = ""
    bot_version: str = ""
    external_id: str = ""


def annotation_create(*, annotation: AnnotationIn) -> tuple[Annotation, bool]:
    """Store an annotation and return it, True; or, when its `external_id` is stored already,
    the stored annotation as it is, False (a retried release hook makes no duplicate).

    Race-safe: of two posts of one new external id, the second's insert waits for the first
    to commit, fails on the unique index, and reads the first's row (Django's get_or_create).
    """
    fields = dataclasses.asdict(annotation)
    if not annotation.external_id:
        return Annotation.objects.create(**fields), True
    return Annotation.objects.get_or_create(external_id=annotation.external_id, defaults=fields)
