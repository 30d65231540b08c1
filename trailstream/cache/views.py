"""Views over `events` that name the daily questions (iam_changes, console_logins, ...), built from the catalog.

Applied by store.open_cache after the migrations, so a changed catalog list re-creates its view.
"""

from __future__ import annotations

from dataclasses import dataclass

from trailstream import catalog
from trailstream.cache.rows import EVENT_COLUMNS

PUBLIC_COLUMNS = tuple(name for name in EVENT_COLUMNS if name not in ("raw", "raw_codec", "record_hash")) + ("file_id",)


@dataclass(frozen=True)
class View:
    name: str
    description: str
    where: str
    extra_columns: str = ""

    @property
    def sql(self) -> str:
        columns = ", ".join(PUBLIC_COLUMNS) + (f", {self.extra_columns}" if self.extra_columns else "")
        return f"CREATE VIEW {self.name} AS SELECT {columns} FROM events WHERE {self.where}"


def _quoted(values) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def _use_case_where(key: str) -> str:
    use_case = catalog.USE_CASES[key]
    return f"event_source = '{use_case.event_source}' AND event_name IN ({_quoted(use_case.event_names)})"


_UNAUTHORIZED_WHERE = "error_code IN ({}) OR {}".format(
    _quoted(catalog.UNAUTHORIZED_ERROR_CODES),
    " OR ".join(f"error_code LIKE '%{pattern}%'" for pattern in catalog.UNAUTHORIZED_ERROR_CODE_PATTERNS),
)

VIEWS: tuple[View, ...] = (
    View("iam_changes", catalog.USE_CASES["iam"].description, _use_case_where("iam")),
    View("security_group_changes", "Security groups created, deleted, opened or closed.",
         f"event_source = 'ec2.amazonaws.com' AND event_name IN ({_quoted(catalog.SECURITY_GROUP_EVENTS)})"),
    View("network_changes", catalog.USE_CASES["network"].description, _use_case_where("network")),
    View("instance_changes", catalog.USE_CASES["instances"].description, _use_case_where("instances")),
    View("elastic_ip_changes", catalog.USE_CASES["elastic_ips"].description, _use_case_where("elastic_ips")),
    View("console_logins", "Console sign-ins, with their result and whether MFA was used.",
         f"event_name = '{catalog.CONSOLE_LOGIN_EVENT}'",
         "response_elements ->> '$.ConsoleLogin' AS login_result, additional_event_data ->> '$.MFAUsed' AS mfa_used"),
    View("unauthorized_calls", "Calls refused because the caller was not allowed.", _UNAUTHORIZED_WHERE),
    View("root_activity", "Everything the account root user did.", "user_type = 'Root'"),
    View("privilege_changes", "Calls that change who may do what (IAM, security groups, bucket and key policies).",
         f"event_name IN ({_quoted(catalog.PRIVILEGE_CHANGE_EVENTS)})"),
    View("trail_tampering", "CloudTrail logging stopped, deleted or narrowed.",
         f"event_name IN ({_quoted(catalog.TRAIL_TAMPERING_EVENTS)})"),
    View("detector_changes", "GuardDuty, Config, Security Hub or Access Analyzer switched off or changed.",
         f"event_name IN ({_quoted(catalog.DETECTOR_DISABLING_EVENTS)})"),
)


def ensure_views(db) -> None:
    """Create the views, or re-create any whose definition no longer matches the catalog (idempotent)."""
    stored = dict(db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'view'").fetchall())
    stale = [view for view in VIEWS if stored.get(view.name) != view.sql]
    if not stale:
        return
    with db.atomic():
        for view in stale:
            db.execute(f"DROP VIEW IF EXISTS {view.name}")
            db.execute(view.sql)
