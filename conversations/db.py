"""A psycopg cursor on Django's connection, for the few statements every API request runs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def raw_cursor() -> Iterator[psycopg.Cursor]:
    """A plain psycopg cursor on Django's connection, past Django's cursor wrapper.

    For the statements of every API request (the key lookup, the rate-limit count): it binds
    server-side, so they can be prepared once per connection (`execute(..., prepare=True)`),
    where Django's cursor quotes every parameter into the SQL text in Python and PostgreSQL
    plans each statement again, a large share of a single POST's Python time
    (docs/benchmarks.md, "Prepared statements on every request").

    The connection gets Django's health check first, errors become Django's
    (`wrap_database_errors`), and the statements belong to the current transaction, if any,
    as a Django cursor's would. Django's query log (`connection.queries`,
    `assertNumQueries`) does not see them.
    """
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        yield cursor
