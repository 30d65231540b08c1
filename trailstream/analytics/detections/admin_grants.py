"""AdministratorAccess attached, or an inline policy or new default version allowing *:* on *."""

from __future__ import annotations

import orjson
import polars as pl

from trailstream import catalog
from trailstream.analytics import transforms
from trailstream.analytics.detections.common import Finding
from trailstream.analytics.detections.events import request_text, single_event_findings, successful_calls, who
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.filters import EventFilter

FINDING_TYPE = "admin_policy_attached"
SETTINGS = ()  # every successful grant counts


def grants_full_admin(policy_document: str | dict | None) -> bool:
    """True when a policy document allows every action ("*" or "*:*") on every resource."""
    if isinstance(policy_document, str):
        try:
            policy_document = orjson.loads(policy_document)
        except orjson.JSONDecodeError:
            return False
    if not isinstance(policy_document, dict):
        return False
    statements = policy_document.get("Statement")
    statements = statements if isinstance(statements, list) else [statements]

    def as_list(value):
        return value if isinstance(value, list) else [value]

    return any(
        isinstance(statement, dict)
        and statement.get("Effect") == "Allow"
        and any(action in ("*", "*:*") for action in as_list(statement.get("Action")))
        and "*" in as_list(statement.get("Resource"))
        for statement in statements
    )


def detect_admin_grants(conn, event_filter: EventFilter | None = None,
                        settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per successful call giving an identity full administrator rights."""
    events = successful_calls(conn, event_filter, catalog.POLICY_ATTACH_EVENTS + catalog.POLICY_DOCUMENT_EVENTS)
    attach = pl.col("event_name").is_in(catalog.POLICY_ATTACH_EVENTS) & request_text("$.policyArn").is_in(
        catalog.ADMIN_POLICY_ARNS).fill_null(False)
    not_a_draft = (pl.col("event_name") != "CreatePolicyVersion") | (
        request_text("$.setAsDefault").str.to_lowercase() == "true").fill_null(False)
    inline = pl.col("event_name").is_in(catalog.POLICY_DOCUMENT_EVENTS) & not_a_draft & request_text(
        "$.policyDocument").map_elements(grants_full_admin, return_dtype=pl.Boolean, skip_nulls=True).fill_null(False)
    target = transforms.first_of(
        pl.format("user {}", request_text("$.userName")),
        pl.format("role {}", request_text("$.roleName")),
        pl.format("group {}", request_text("$.groupName")),
        pl.format("policy {}", request_text("$.policyArn")),
    )
    grant = pl.when(attach).then(request_text("$.policyArn").str.extract(r"policy/(.+)$", 1)).otherwise(
        pl.lit("an inline policy allowing *:*"))
    summary = pl.format("{} gave {} {} ({}).", who(), target.fill_null("an identity"), grant.fill_null("a policy"),
                        pl.col("event_name"))
    return single_event_findings(events.filter(attach | inline), FINDING_TYPE, summary, details={"target": target})
