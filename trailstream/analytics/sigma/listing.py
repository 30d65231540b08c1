"""The rules as people review them (the Detection rules page, `rules list`): state, attribution and match counts."""

from __future__ import annotations

import polars as pl

from trailstream.cache import sigma_state

RULE_TABLE_SCHEMA = {
    "rule_id": pl.String, "title": pl.String, "status": pl.String, "reason": pl.String, "level": pl.String,
    "kind": pl.String, "enabled": pl.Boolean, "matches": pl.Int64, "last_match_at": pl.String, "author": pl.String,
    "link": pl.String, "path": pl.String, "lake": pl.String,
}
STATUS_ORDER = {"converted": 0, "unsupported": 1, "failed": 2}


def query_rule_table(conn) -> pl.DataFrame:
    """Every loaded rule with its state; `matches` counts what it matched (before exceptions) since it was loaded;
    `lake` says why the lake cannot answer a converted rule (empty when it can)."""
    from trailstream.analytics.sigma.lake import lake_reasons  # the lake's SQL (sqlglot): not for every post-sync step

    catalog = sigma_state.query_catalog(conn)
    reasons = lake_reasons([row for row in catalog if row["status"] == "converted"])
    rows = [{name: row.get(name) for name in RULE_TABLE_SCHEMA} | {"lake": reasons.get(row["rule_id"], "")}
            for row in catalog]
    frame = pl.DataFrame(rows, schema=RULE_TABLE_SCHEMA | {"enabled": pl.Int64}, orient="row")
    return (frame.with_columns(pl.col("enabled").cast(pl.Boolean))
            .sort(pl.col("status").replace_strict(STATUS_ORDER, default=3), "title"))


def status_counts(table: pl.DataFrame) -> dict[str, int]:
    """Rules per state, every state present."""
    found = dict(table.group_by("status").len().iter_rows())
    return {status: int(found.get(status, 0)) for status in STATUS_ORDER}


def format_rule_table(table: pl.DataFrame) -> str:
    """Plain text for the terminal: one line per rule, then a count per state."""
    lines = []
    for row in table.iter_rows(named=True):
        state = row["status"] if row["enabled"] or row["status"] != "converted" else "disabled"
        if row["status"] == "converted":
            count = row["matches"]
            matches = "-" if count is None else f"{count:,} match" + ("" if count == 1 else "es")
            detail = f"{matches}, {row['level'] or 'no level'}"
        else:
            detail = row["reason"]
        lines.append(f"{state:<11}  {row['title']} [{row['rule_id']}]: {detail}")
    counts = status_counts(table)
    lines.append(f"{table.height:,} rules: " + ", ".join(f"{count:,} {status}" for status, count in counts.items()))
    return "\n".join(lines)
