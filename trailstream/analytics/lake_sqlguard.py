"""The SQL page on the lake: a person's query is parsed with sqlglot (Trino, Athena's dialect) and runs only as one
SELECT over the lake's `events` table, capped at the cache's row cap, rendered for the live engine (Athena or DuckDB).

The engine never sees the text as typed: only the statement sqlglot parsed, checked and rendered, so a file path, a
table function (DuckDB's read_csv) or another table cannot reach it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import polars as pl
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError
from sqlglot.optimizer.scope import traverse_scope

from trailstream.analytics import sqlguard
from trailstream.analytics.sqlguard import DEFAULT_ROW_CAP, READ_ONLY_HINT, QueryRefused, QueryResult, over_time_limit

READ = "trino"
LAKE_TABLE = "events"
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_WRITES = (exp.DDL, exp.DML, exp.Into, exp.Command, exp.Alter, exp.Drop, exp.Merge, exp.Copy, exp.Set, exp.Use,
           exp.Pragma, exp.Transaction, exp.Commit, exp.Rollback, exp.Describe, exp.Show, exp.Kill)
EXAMPLE = "SELECT event_name, count(*) AS events FROM events WHERE event_time >= :start GROUP BY 1 ORDER BY 2 DESC"


def parse_lake_sql(sql: str) -> exp.Query:
    """The one read-only statement in `sql`, or QueryRefused saying why it is not one."""
    if not sql or not sql.strip():
        raise QueryRefused("the query is empty: write a SELECT over the events table")
    try:
        statements = [found for found in sqlglot.parse(sql, read=READ) if found is not None]
    except ParseError as exc:
        problem = exc.errors[0]["description"] if exc.errors else str(exc).splitlines()[0]
        raise QueryRefused(f"the query is not SQL the lake understands (Trino, as Athena speaks it): {problem}") from None
    if len(statements) != 1:
        raise QueryRefused(f"one statement at a time: the query holds {len(statements)}")
    statement = statements[0]
    if not isinstance(statement, exp.Query) or any(statement.find_all(*_WRITES)):
        raise QueryRefused(f"nothing here may change the lake; {READ_ONLY_HINT}")
    return statement


def lake_tables(statement: exp.Query) -> list[exp.Table]:
    """The tables the statement reads from the lake (its WITH names excluded); QueryRefused for anything but events."""
    real = {id(source) for scope in traverse_scope(statement) for source in scope.sources.values()
            if isinstance(source, exp.Table)}
    named = {cte.alias_or_name for cte in statement.find_all(exp.CTE)}
    tables = []
    for table in statement.find_all(exp.Table):
        name = table.this.name if isinstance(table.this, exp.Identifier) else ""
        plain = bool(_PLAIN_NAME.fullmatch(name)) and not table.args.get("db") and not table.args.get("catalog")
        if id(table) not in real and plain and name in named:
            continue  # a WITH query's name
        if not plain or name.lower() != LAKE_TABLE:
            shown = table.sql(dialect=READ)[:80]
            raise QueryRefused(f"the lake's SQL reads only the {LAKE_TABLE} table, and {shown} is not it: "
                               f"write FROM {LAKE_TABLE} (no files, table functions or other tables)")
        tables.append(table)
    return tables


def _bind(statement: exp.Query, params: dict[str, str]) -> None:
    """:start and :end become the period's text (as the cache's SQL page binds them); any other is refused."""
    for placeholder in list(statement.find_all(exp.Placeholder)):
        if placeholder.name not in params:
            known = ", ".join(f":{key}" for key in params)
            raise QueryRefused(f"the query names a parameter {placeholder.sql()} the page does not fill: use {known}")
        placeholder.replace(exp.Literal.string(params[placeholder.name]))


def _capped(statement: exp.Query, row_cap: int) -> exp.Query:
    """At most row_cap + 1 rows (one more says the result was cut): a LIMIT added, or a larger one lowered."""
    limit = statement.args.get("limit")
    given = limit.expression if isinstance(limit, exp.Limit) else None
    if given is not None and not (isinstance(given, exp.Literal) and given.is_int):
        raise QueryRefused("LIMIT must be a whole number here")
    if given is None or int(given.name) > row_cap + 1:
        return statement.limit(row_cap + 1, copy=False)
    return statement


def render_lake_sql(sql: str, params: dict[str, str], table: exp.Table, dialect: str,
                    row_cap: int = DEFAULT_ROW_CAP) -> str:
    """The person's query as the engine will run it: checked, bound, capped, `events` named as the lake's table."""
    statement = parse_lake_sql(sql)
    for found in lake_tables(statement):
        alias = found.alias or LAKE_TABLE
        found.replace(exp.alias_(table.copy(), alias, table=True))
    _bind(statement, params)
    return _capped(statement, row_cap).sql(dialect=dialect)


def run_lake_query(run: Callable[[str], pl.DataFrame], table: exp.Table, dialect: str, sql: str,
                   params: dict[str, str], row_cap: int = DEFAULT_ROW_CAP, interrupt: Callable[[], None] | None = None,
                   time_limit: float | None = None) -> QueryResult:
    """Run a person's query on the lake through `run` (the engine), stopped by `interrupt` after the time limit (the
    cache's, sqlguard.DEFAULT_TIME_LIMIT, unless given) when the engine has one (DuckDB; Athena has its runner's);
    the engine's own errors pass up unchanged."""
    rendered = render_lake_sql(sql, params, table, dialect, row_cap)
    started = time.monotonic()
    limit = sqlguard.DEFAULT_TIME_LIMIT if time_limit is None else time_limit
    frame = run(rendered) if interrupt is None else _run_in_time(run, rendered, interrupt, limit)
    return QueryResult(frame.head(row_cap), frame.height > row_cap, time.monotonic() - started, row_cap)


def _run_in_time(run: Callable[[str], pl.DataFrame], rendered: str, interrupt: Callable[[], None],
                 time_limit: float) -> pl.DataFrame:
    """`run(rendered)`, interrupted by a timer after time_limit seconds (QueryFailed, the cache's sentence); the lock
    keeps a late timer from interrupting a statement that starts after this one finished."""
    lock, stopped, finished = threading.Lock(), threading.Event(), threading.Event()

    def stop() -> None:
        with lock:
            if not finished.is_set():
                stopped.set()
                interrupt()

    timer = threading.Timer(time_limit, stop)
    timer.start()
    try:
        return run(rendered)
    except Exception:
        if stopped.is_set():
            raise over_time_limit(time_limit) from None
        raise
    finally:
        with lock:
            finished.set()
        timer.cancel()
