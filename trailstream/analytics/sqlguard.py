"""User SQL over the cache, safely (the datasette way): read-only connection, authorizer, time limit, row cap.

Also the library of example queries (the views they read are in trailstream/views.py).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import orjson
import polars as pl

from trailstream.cache import store
from trailstream.timefmt import TIME_FORMAT

DEFAULT_TIME_LIMIT = 10.0  # seconds
DEFAULT_ROW_CAP = 10_000
MAX_VALUE_BYTES = 4 * 1024 * 1024  # largest string or blob a query may read or build (zeroblob/printf bombs)
MAX_RESULT_BYTES = 64 * 1024 * 1024  # text and blobs kept from one result before it is cut short
FETCH_BATCH = 50  # rows fetched between size checks (at most FETCH_BATCH * MAX_VALUE_BYTES beyond the budget)
PROGRESS_EVERY = 1_000  # SQLite VM steps between time-limit checks

# --- The guard ----------------------------------------------------------------------------------------------------

_READ_ACTIONS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE}
DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})
# PRAGMAs whose argument is only a table or index name: they describe the schema and change nothing.
SCHEMA_PRAGMAS = frozenset(
    {"table_info", "table_xinfo", "table_list", "index_list", "index_info", "index_xinfo", "foreign_key_list"}
)
# PRAGMAs that only report a value when given no argument (with one, most of them would set it).
VALUE_PRAGMAS = frozenset(
    {"user_version", "schema_version", "application_id", "page_count", "page_size", "freelist_count", "encoding",
     "data_version", "database_list", "collation_list", "function_list", "module_list", "pragma_list",
     "compile_options", "journal_mode"}
)
_WRITE_ACTIONS = {
    getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ")
    for name in ("INSERT", "UPDATE", "DELETE", "ALTER_TABLE", "ANALYZE", "REINDEX", "CREATE_INDEX", "CREATE_TABLE",
                 "CREATE_TRIGGER", "CREATE_VIEW", "CREATE_VTABLE", "CREATE_TEMP_INDEX", "CREATE_TEMP_TABLE",
                 "CREATE_TEMP_TRIGGER", "CREATE_TEMP_VIEW", "DROP_INDEX", "DROP_TABLE", "DROP_TRIGGER", "DROP_VIEW",
                 "DROP_VTABLE", "DROP_TEMP_INDEX", "DROP_TEMP_TABLE", "DROP_TEMP_TRIGGER", "DROP_TEMP_VIEW")
}
READ_ONLY_HINT = "queries here only read: write one SELECT (or WITH ... SELECT)"


class QueryRefused(ValueError):
    """The query asks for something not allowed here (a write, ATTACH, several statements...); nothing ran."""


class QueryFailed(RuntimeError):
    """The query is allowed but could not finish (syntax error, unknown column, time limit...); nothing changed."""


@dataclass
class QueryResult:
    frame: pl.DataFrame
    truncated: bool
    elapsed: float
    row_cap: int = DEFAULT_ROW_CAP
    too_large: bool = False

    @property
    def notice(self) -> str | None:
        """What a person should know about the rows shown (None when they are all the rows)."""
        if self.too_large:
            return (f"Only the first {self.frame.height:,} rows are shown: the result passed "
                    f"{MAX_RESULT_BYTES // (1024 * 1024)} MB. Select fewer or shorter columns, or add LIMIT.")
        if self.truncated:
            return (f"Only the first {self.row_cap:,} rows are shown: add LIMIT, a narrower WHERE or GROUP BY "
                    "to see what you need.")
        return None


class _Guard:
    """The authorizer: allows reading and read-only functions and PRAGMAs, remembers why it refused anything else."""

    def __init__(self):
        self.refusal: str | None = None

    def __call__(self, action, arg1, arg2, db_name, source):
        refusal = self.check(action, arg1, arg2, db_name)
        if refusal is None:
            return sqlite3.SQLITE_OK
        self.refusal = self.refusal or refusal
        return sqlite3.SQLITE_DENY

    @staticmethod
    def check(action, arg1, arg2, db_name) -> str | None:
        if action in _READ_ACTIONS:
            return None
        if action == sqlite3.SQLITE_FUNCTION:
            return None if arg2.lower() not in DENIED_FUNCTIONS else f"the function {arg2}() is not allowed here"
        if action == sqlite3.SQLITE_PRAGMA:
            name = arg1.lower()
            if name in SCHEMA_PRAGMAS or (name in VALUE_PRAGMAS and arg2 is None):
                return None
            shown = f"PRAGMA {arg1}" + (f" = {arg2}" if arg2 is not None else "")
            return (f"{shown} is not allowed: only PRAGMAs that read run here, such as table_info(events), "
                    "index_list(events) or user_version without a value")
        if action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master" and db_name == "main":
            # SQLite declares table-valued functions (json_each, pragma_table_info) through this no-op; the main
            # database is opened read-only and SQLite itself refuses UPDATE of sqlite_master, so nothing can land.
            return None
        if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH):
            return "ATTACH, DETACH and VACUUM are not allowed: queries read the TrailStream cache only"
        if action in (sqlite3.SQLITE_TRANSACTION, sqlite3.SQLITE_SAVEPOINT):
            return f"transactions (BEGIN, COMMIT, SAVEPOINT) are not needed: {READ_ONLY_HINT}"
        if action in _WRITE_ACTIONS and arg1 in ("sqlite_master", "sqlite_temp_master"):
            # SQLite asks about its schema table first and stops at the refusal, so this is all CREATE, DROP,
            # ALTER and ANALYZE ever show.
            return f"the query would change the cache's tables or indexes (CREATE, DROP, ALTER, ANALYZE): {READ_ONLY_HINT}"
        if action in _WRITE_ACTIONS:
            return f"the query would change the cache ({_WRITE_ACTIONS[action]} on {arg1}): {READ_ONLY_HINT}"
        return f"this kind of statement is not allowed: {READ_ONLY_HINT}"


def open_guarded(db_path) -> tuple[sqlite3.Connection, _Guard]:
    """A read-only connection with the authorizer installed and raw_record(event_id) available."""
    conn = store.open_cache_readonly(db_path)
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    conn.create_function("raw_record", 1, lambda event_id: _raw_record_json(conn, event_id), deterministic=True)
    guard = _Guard()
    conn.set_authorizer(guard)
    return conn, guard


def _raw_record_json(conn: sqlite3.Connection, event_id) -> str | None:
    """The original CloudTrail record as JSON text, so json_extract / ->> reach fields the columns leave out."""
    if not isinstance(event_id, str):
        return None
    record = store.load_record(conn, event_id)
    return orjson.dumps(record).decode() if record is not None else None


OPEN_START, OPEN_END = "", "9999-12-31T23:59:59Z"  # bounds of an open period: every cache time sorts between them


def period_params(event_filter) -> dict[str, str]:
    """The named parameters :start and :end a query can use for the selected period (open ends included)."""
    return {"start": event_filter.start or OPEN_START, "end": event_filter.end or OPEN_END}


def require_cache(db_path) -> None:
    """Say so when there is no cache yet, rather than a bare 'unable to open database file'."""
    if not Path(db_path).exists():
        raise QueryFailed(f"there is no cache at {db_path} yet: sync a source or load the demo data first")


def run_query(db_path, sql: str, params=None, time_limit: float = DEFAULT_TIME_LIMIT,
              row_cap: int = DEFAULT_ROW_CAP) -> QueryResult:
    """Run one read-only statement; raises QueryRefused or QueryFailed with a message for people."""
    if not sql or not sql.strip():
        raise QueryRefused("the query is empty: write a SELECT, or pick an example query")
    require_cache(db_path)
    conn, guard = open_guarded(db_path)
    started = time.monotonic()
    deadline = started + time_limit
    timed_out = []

    def over_time() -> int:
        if time.monotonic() > deadline:
            timed_out.append(True)
            return 1
        return 0

    conn.set_progress_handler(over_time, PROGRESS_EVERY)
    try:
        cursor = conn.execute(sql, params if params is not None else ())
        if cursor.description is None:
            raise QueryRefused(f"the query returns no rows to show: {READ_ONLY_HINT}")
        rows, too_large = _fetch(cursor, row_cap + 1)
    except sqlite3.Error as exc:
        raise _explain(exc, guard, bool(timed_out), time_limit) from None
    finally:
        conn.close()
    truncated = too_large or len(rows) > row_cap
    columns = _unique_names([column[0] for column in cursor.description])
    frame = pl.DataFrame(rows[:row_cap], schema=columns, orient="row", infer_schema_length=None)
    return QueryResult(_describe_blobs(frame), truncated, time.monotonic() - started, row_cap, too_large)


def _fetch(cursor: sqlite3.Cursor, limit: int) -> tuple[list, bool]:
    """Up to `limit` rows, stopping early (True) once their text and blobs pass MAX_RESULT_BYTES."""
    rows, size = [], 0
    while len(rows) < limit:
        batch = cursor.fetchmany(min(FETCH_BATCH, limit - len(rows)))
        if not batch:
            break
        rows.extend(batch)
        size += sum(len(value) for row in batch for value in row if isinstance(value, (str, bytes)))
        if size > MAX_RESULT_BYTES:
            return rows, True
    return rows, False


def over_time_limit(time_limit: float) -> QueryFailed:
    """The sentence a query stopped at the time limit ends with, on the cache and on the lake."""
    return QueryFailed(f"the query ran longer than the {time_limit:g}-second limit and was stopped: "
                       "add LIMIT, narrow it with WHERE event_time >= '...', or aggregate with GROUP BY")


def _explain(exc: sqlite3.Error, guard: _Guard, timed_out: bool, time_limit: float) -> Exception:
    """Turn a sqlite3 error into QueryRefused / QueryFailed with a sentence that says what to do."""
    message = str(exc)
    if guard.refusal:
        return QueryRefused(guard.refusal)
    if timed_out:
        return over_time_limit(time_limit)
    if "one statement at a time" in message:
        return QueryRefused("only one statement per query: remove everything after the first ';'")
    if "readonly" in message or "read-only" in message:
        return QueryRefused(f"the query would change the cache: {READ_ONLY_HINT}")
    if "too big" in message:
        return QueryFailed(f"a value in the query grew beyond {MAX_VALUE_BYTES // (1024 * 1024)} MB: build smaller "
                           "strings or blobs")
    if "binding" in message.lower() or "supplied" in message:
        return QueryFailed(f"the query's parameters do not match: {message} (named parameters :start and :end "
                           "hold the selected period)")
    return QueryFailed(f"SQLite could not run the query: {message}; check the spelling of tables and columns "
                       "against the schema, or start from an example query")


def _unique_names(names: list[str]) -> list[str]:
    """Column names as a DataFrame needs them: 'principal', 'principal_2' when a join repeats one."""
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return unique


def _describe_blobs(frame: pl.DataFrame) -> pl.DataFrame:
    """BLOB columns (the compressed raw record) as '<123 bytes>': raw_record(event_id) gives the readable record."""
    blobs = [name for name, dtype in frame.schema.items() if dtype == pl.Binary]
    if not blobs:
        return frame
    return frame.with_columns(pl.format("<{} bytes>", pl.col(name).bin.size()).alias(name) for name in blobs)


# --- Example queries ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ExampleQuery:
    key: str
    title: str
    sql: str


_LAST_7_DAYS = f"strftime('{TIME_FORMAT}', 'now', '-7 days')"

EXAMPLE_QUERIES: tuple[ExampleQuery, ...] = (
    ExampleQuery("root_this_week", "Who used the root account this week", f"""
SELECT event_time, event_name, event_source, aws_region, source_ip, user_agent, error_code
FROM root_activity
WHERE event_time >= {_LAST_7_DAYS}
ORDER BY event_time DESC"""),
    ExampleQuery("top_errors_per_service", "Top error codes per service", """
SELECT event_source, error_code, count(*) AS calls, count(DISTINCT principal) AS principals
FROM events
WHERE error_code IS NOT NULL
GROUP BY event_source, error_code
ORDER BY calls DESC
LIMIT 50"""),
    ExampleQuery("new_access_keys", "New access keys, who created them and for whom", """
SELECT event_time, principal AS created_by,
       coalesce(request_parameters ->> '$.userName', principal) AS for_user,
       response_elements ->> '$.accessKey.accessKeyId' AS new_access_key_id,
       source_ip
FROM events
WHERE event_name = 'CreateAccessKey' AND error_code IS NULL
ORDER BY event_time DESC"""),
    ExampleQuery("security_groups_open_to_world", "Security group rules opened to the whole internet", """
SELECT DISTINCT e.event_time, e.principal, e.aws_region,
       e.request_parameters ->> '$.groupId' AS group_id,
       rule.value ->> '$.ipProtocol' AS protocol,
       rule.value ->> '$.fromPort' AS from_port,
       rule.value ->> '$.toPort' AS to_port,
       cidr.value AS cidr
FROM security_group_changes AS e,
     json_each(e.request_parameters, '$.ipPermissions.items') AS rule,
     json_tree(rule.value) AS cidr
WHERE e.event_name = 'AuthorizeSecurityGroupIngress' AND e.error_code IS NULL
  AND cidr.key IN ('cidrIp', 'cidrIpv6') AND cidr.value IN ('0.0.0.0/0', '::/0')
ORDER BY e.event_time DESC"""),
    ExampleQuery("console_logins_without_mfa", "Console sign-ins without MFA", """
SELECT event_time, principal, user_type, source_ip, login_result, user_agent
FROM console_logins
WHERE mfa_used = 'No' AND user_type IN ('IAMUser', 'Root')
ORDER BY event_time DESC"""),
    ExampleQuery("failed_console_logins", "Failed console sign-ins by user and address", """
SELECT principal, source_ip, count(*) AS failures, min(event_time) AS first, max(event_time) AS last,
       max(error_message) AS example_message
FROM console_logins
WHERE login_result = 'Failure'
GROUP BY principal, source_ip
ORDER BY failures DESC"""),
    ExampleQuery("access_keys", "Access keys in use: who, how much, from how many addresses", """
SELECT access_key_id, principal, count(*) AS calls, count(DISTINCT source_ip) AS source_ips,
       min(event_time) AS first_seen, max(event_time) AS last_seen
FROM events
WHERE access_key_id IS NOT NULL
GROUP BY access_key_id, principal
ORDER BY calls DESC"""),
    ExampleQuery("events_by_access_key", "Everything one access key did (put your key in place of the sub-select)", """
SELECT event_time, event_source, event_name, aws_region, source_ip, error_code
FROM events
WHERE access_key_id = (SELECT access_key_id FROM events WHERE access_key_id IS NOT NULL
                       GROUP BY access_key_id ORDER BY count(*) DESC LIMIT 1)
ORDER BY event_time DESC"""),
    ExampleQuery("unauthorized_by_principal", "Who was refused most, and for what", """
SELECT principal, event_source, event_name, error_code, count(*) AS refusals
FROM unauthorized_calls
GROUP BY principal, event_source, event_name, error_code
ORDER BY refusals DESC
LIMIT 100"""),
    ExampleQuery("iam_changes_this_week", "IAM changes this week", f"""
SELECT event_time, principal, event_name, error_code,
       coalesce(request_parameters ->> '$.userName', request_parameters ->> '$.roleName',
                request_parameters ->> '$.groupName', request_parameters ->> '$.policyArn') AS target
FROM iam_changes
WHERE event_time >= {_LAST_7_DAYS}
ORDER BY event_time DESC"""),
    ExampleQuery("instances_launched", "Instances launched, with type and image", """
SELECT event_time, principal, aws_region,
       request_parameters ->> '$.instanceType' AS instance_type,
       request_parameters ->> '$.instancesSet.items[0].imageId' AS image_id,
       response_elements ->> '$.instancesSet.items[0].instanceId' AS instance_id
FROM instance_changes
WHERE event_name = 'RunInstances' AND error_code IS NULL
ORDER BY event_time DESC"""),
    ExampleQuery("calls_per_day_per_service", "Calls per day and service", """
SELECT substr(event_time, 1, 10) AS day, event_source, count(*) AS calls,
       sum(error_code IS NOT NULL) AS errors
FROM events
GROUP BY day, event_source
ORDER BY day, calls DESC"""),
    ExampleQuery("busiest_principals", "Busiest principals and their error rate", """
SELECT principal, user_type, count(*) AS calls,
       round(100.0 * sum(error_code IS NOT NULL) / count(*), 1) AS error_percent,
       count(DISTINCT event_name) AS distinct_actions
FROM events
GROUP BY principal, user_type
ORDER BY calls DESC
LIMIT 50"""),
    ExampleQuery("source_ips_outside_aws", "Addresses calling from outside AWS", """
SELECT source_ip, count(*) AS calls, count(DISTINCT principal) AS principals,
       group_concat(DISTINCT aws_region) AS regions
FROM events
WHERE source_ip NOT LIKE '%.amazonaws.com' AND source_ip <> 'AWS Internal'
GROUP BY source_ip
ORDER BY calls DESC
LIMIT 100"""),
    ExampleQuery("assumed_role_issuers", "Roles behind assumed-role sessions (from the full record)", """
SELECT raw_record(event_id) ->> '$.userIdentity.sessionContext.sessionIssuer.arn' AS role_arn,
       count(*) AS calls, count(DISTINCT principal) AS sessions
FROM (SELECT event_id, principal FROM events WHERE user_type = 'AssumedRole'
      ORDER BY event_time DESC LIMIT 2000)
GROUP BY role_arn
ORDER BY calls DESC"""),
    ExampleQuery("schema", "Tables and views you can query, with their columns", """
SELECT m.type, m.name AS table_name, c.name AS column_name, c.type AS column_type
FROM sqlite_master AS m, pragma_table_info(m.name) AS c
WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%'
ORDER BY m.type, m.name, c.cid"""),
)
EXAMPLES_BY_KEY = {example.key: example for example in EXAMPLE_QUERIES}

JSON_HELP = """\
`request_parameters`, `response_elements`, `additional_event_data` and `resources` hold JSON text:
reach inside with `->>` (a value) or `json_extract`, and unnest lists with `json_each` / `json_tree`.

```sql
SELECT request_parameters ->> '$.bucketName' AS bucket FROM events WHERE event_name = 'PutBucketPolicy';
SELECT additional_event_data ->> '$.MFAUsed' AS mfa, count(*) FROM events
  WHERE event_name = 'ConsoleLogin' GROUP BY mfa;
SELECT e.event_time, item.value ->> '$.instanceId' AS instance FROM instance_changes AS e,
  json_each(e.response_elements, '$.instancesSet.items') AS item;
```
The full original record is compressed in the cache; `raw_record(event_id)` returns it as JSON text:
`SELECT raw_record(event_id) ->> '$.userIdentity.sessionContext.sessionIssuer.userName' FROM events LIMIT 10`.
Named parameters `:start` and `:end` hold the selected period (`WHERE event_time >= :start`).
"""


# --- Output -------------------------------------------------------------------------------------------------------

def format_result(result: QueryResult, fmt: str = "table") -> str:
    """The rows as CSV, JSON (a list of objects) or an aligned text table, for the CLI."""
    from trailstream.analytics import exports

    frame = result.frame
    if fmt == "csv":
        return exports.table_csv(frame).decode()
    if fmt == "json":
        return exports.table_json(frame).decode()
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: use csv, json or table")
    with pl.Config(tbl_rows=-1, tbl_cols=-1, fmt_str_lengths=80, tbl_hide_dataframe_shape=True,
                   tbl_hide_column_data_types=True, tbl_formatting="ASCII_MARKDOWN"):
        text = str(frame)
    footer = result.notice or f"{frame.height:,} row(s) in {result.elapsed:.2f} s"
    return f"{text}\n{footer}"
