"""The Sources & settings page's parts: one form per source kind, saving and removing sources in the settings file,
the Test connection answer, and how a broken settings file is explained."""

from __future__ import annotations

import json
from datetime import date

import streamlit as st

from trailstream import config
from trailstream.analytics import backend
from trailstream.app import forms, signin, state
from trailstream.app.widgets import plain
from trailstream.filters import EventFilter
from trailstream.ingest import athena, aws, sync

# kind -> (setting, label, widget, help); widget is "text", "list" (comma separated) or "date".
SOURCE_FIELDS: dict[str, tuple[tuple[str, str, str, str], ...]] = {
    "sqs": (
        ("queue", "Queue name or URL", "text", "The SQS queue that receives the trail bucket's S3 notifications."),
        ("buckets", "Trail buckets", "list", "Buckets the queue's notifications point to, comma separated."),
    ),
    "s3": (
        ("bucket", "Trail bucket", "text", "The S3 bucket CloudTrail delivers to."),
        ("prefix", "Prefix", "text", "The trail's S3 key prefix, if it has one (before AWSLogs/)."),
        ("since", "From (UTC day)", "date", "First day to import."),
        ("until", "To (UTC day, included)", "date", "Last day to import; empty means today."),
        ("accounts", "Accounts", "list", "Only these 12-digit account IDs, comma separated; empty means all."),
        ("regions", "Regions", "list", "Only these regions, comma separated; empty means all."),
    ),
    "local": (
        ("path", "Folder", "text", "A folder of CloudTrail .json / .json.gz files (read recursively)."),
    ),
    "lookup": (
        ("regions", "Regions", "list", "Only these regions, comma separated; empty means every enabled region."),
        ("since", "From (UTC day)", "date", "First day to read; empty means 90 days ago, all Event history keeps."),
    ),
}
AWS_FIELDS = (
    ("region", "AWS region", "text", "e.g. eu-west-1; empty uses AWS_DEFAULT_REGION or the profile's region."),
    ("profile", "AWS profile", "text", "A profile from ~/.aws/config; empty uses the default credential chain."),
    ("role_arn", "Role to assume (ARN)", "text", "Optional: assume this role, e.g. in another account."),
    ("external_id", "External ID", "text", "Only if the role's trust policy requires one."),
)
CREDENTIALS_HELP = """
TrailStream never stores AWS keys. It uses the standard AWS credential chain of the machine it runs on:

- **Environment variables** `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`) set before
  `streamlit run app.py`;
- a **profile** in `~/.aws/credentials` or `~/.aws/config` (SSO profiles too: run `aws sso login --profile NAME`
  first), named in the source's *AWS profile* field;
- an **instance or container role** when TrailStream runs on EC2, ECS or EKS.

The credentials need `sqs:ReceiveMessage`, `sqs:DeleteMessage`, `sqs:ChangeMessageVisibility`,
`sqs:GetQueueAttributes` on the queue and `s3:ListBucket`, `s3:GetObject` on the trail buckets
(plus `kms:Decrypt` if the logs are KMS-encrypted).
"""


def source_fields(kind: str) -> tuple[tuple[str, str, str, str], ...]:
    return SOURCE_FIELDS[kind] + (AWS_FIELDS if kind in ("sqs", "s3", "lookup") else ())


def source_form(kind: str, existing: config.Source | None, key: str, default_name: str = "") -> config.Source | None:
    """A form for one source; returns the checked Source when saved, else None (problems are shown)."""
    values = config.source_table(existing) if existing else {}
    with st.form(key):
        raw = {"kind": kind, "name": st.text_input("Name", values.get("name", default_name), key=f"{key}-name",
                                                   help="A short name shown in sync results.")}
        columns = st.columns(2)
        for position, (name, label, widget, help_text) in enumerate(source_fields(kind)):
            with columns[position % 2]:
                raw[name] = _field_input(name, label, widget, help_text, values.get(name), f"{key}-{name}")
        submitted = st.form_submit_button("Save source", type="primary", icon=":material/save:")
    if not submitted:
        return None
    source, problems = config.parse_source({k: v for k, v in raw.items() if v not in ("", [], None)})
    if problems:
        st.error("The source was not saved. Fix this and save again:", icon=":material/error:")
        for problem in problems:
            st.text(f"• {problem}")
        return None
    return source


def _field_input(name: str, label: str, widget: str, help_text: str, value, key: str):
    if widget == "list":
        text = st.text_input(label, ", ".join(value or []), key=key, help=help_text)
        return [item.strip() for item in text.replace("\n", ",").split(",") if item.strip()]
    if widget == "date":
        chosen = st.date_input(label, date.fromisoformat(value) if value else None, key=key, help=help_text)
        return chosen.isoformat() if chosen else ""
    return st.text_input(label, value or "", key=key, help=help_text).strip()


def settings_problems(current: config.Settings) -> None:
    """Explain a settings file that cannot be used, and what to do."""
    st.error(f"The settings file has problems, so TrailStream will not change it. Edit {plain(str(current.path))} "
             "in a text editor, fix each line below, then reload this page.", icon=":material/error:")
    for problem in current.errors:
        st.text(f"• {problem}")


def connection_check(source: config.Source) -> None:
    """The Test connection answer for a source: credentials, queue and buckets, or the local folder's files."""
    if isinstance(source, config.LocalSource):
        files, missing = sync.find_local_files([state.settings().resolve(source.path)])
        if missing:
            st.error(f"Folder not found: {source.path}. Check the path (relative paths start at the settings "
                     "file's folder).", icon=":material/error:")
        elif not files:
            st.warning("The folder exists but holds no .json or .json.gz files.", icon=":material/warning:")
        else:
            st.success(f"Found {len(files):,} log file(s) to import.", icon=":material/check_circle:")
        return
    buckets = (source.buckets if isinstance(source, config.SqsSource) else
               [source.bucket] if isinstance(source, config.S3Source) else [])  # Event history: credentials only
    with st.spinner("Asking AWS…"):
        check = aws.check_connection(source.access, queue=getattr(source, "queue", None), buckets=buckets)
    (st.success if check.ok else st.error)("Connection OK" if check.ok else "Connection failed",
                                           icon=":material/check_circle:" if check.ok else ":material/error:")
    st.text(check.message if not check.ok else "\n".join(check.details))


BACKEND_HELP = ("Set `[backend] kind = \"athena\"` in the settings file (with `workgroup`, `database`, `table`, "
                "`output_location`, `region`) to move Overview and Search to the Parquet lake that "
                "`python -m trailstream compact` writes; a `lake` folder instead of s3:// is read here with DuckDB.")


def backend_panel() -> None:
    """Which store the pages read (the cache, or the lake through DuckDB or Athena), and a test of the connection."""
    chosen = state.backend_settings()
    engine = state.lake_engine(chosen)
    if engine is None:
        st.text(f"Pages read the local cache: {state.db_path()}")
        st.caption(BACKEND_HELP)
        return
    where = (f"the lake folder {chosen.lake}, with DuckDB (the local stand-in for Athena)" if engine == "duckdb" else
             f"Athena: workgroup {chosen.workgroup}, table {chosen.database}.{chosen.table}, region "
             f"{chosen.access.region or 'from the environment'}")
    st.text(f"Overview and Search read {where}.\nThe other pages still read the local cache: {state.db_path()}")
    if st.button("Test the connection", key="test-backend", icon=":material/network_check:"):
        with st.spinner("Asking the lake…"):
            try:
                answer = _check_backend(chosen, engine)
            except (aws.SourceError, backend.LakeUnavailable, ValueError) as exc:
                st.error("Connection failed", icon=":material/error:")
                st.text(str(exc))
                return
        st.success("Connection OK", icon=":material/check_circle:")
        st.text(answer)


def _check_backend(chosen: config.BackendSettings, engine: str) -> str:
    """A sentence saying what the lake answered; raises with one saying why not."""
    if chosen.problems():
        raise ValueError("; ".join(chosen.problems()) + ": fix [backend] in the settings file")
    if engine == "athena":
        return athena.check_connection(chosen)
    events = backend.duckdb_backend(chosen.lake).query("totals", EventFilter()).item(0, "events")
    return f"DuckDB read the lake at {chosen.lake}: {events:,} events."


def connect_aws(current: config.Settings) -> None:
    """Connect AWS: the `setup` command for an existing trail (plan, or do), then its queue added as a source."""
    with st.form("connect-aws"):
        trail = st.text_input("Trail name", key="connect-trail", help="An existing trail of this account.").strip()
        left, middle, right = st.columns(3)
        region = left.text_input("Trail's home region", key="connect-region", help="e.g. eu-west-1").strip()
        profile = middle.text_input("AWS profile", key="connect-profile", help="Empty: the default chain.").strip()
        create_role = right.checkbox("Also create the reader role", key="connect-role")
        plan = st.form_submit_button("Show the plan", icon=":material/checklist:")
        connect = st.form_submit_button("Connect", type="primary", icon=":material/cable:")
    access = config.AwsAccess(profile=profile, region=region)
    if not (plan or connect):
        return
    if not trail or access.problems():
        st.error("Name the trail (and check the region) to connect.", icon=":material/error:")
        for problem in access.problems():
            st.text(f"• {problem}")
        return
    from trailstream.ingest import setup

    with st.spinner("Asking AWS…"):
        try:
            result = setup.setup_trail(access, trail, dry_run=not connect, create_role=create_role)
        except aws.SourceError as exc:
            st.error("Setup stopped. Fix this and press Connect again: it finishes what is missing.",
                     icon=":material/error:")
            st.text(str(exc))
            return
    st.text("\n".join(result.steps))
    st.caption("The least-privilege reader policy" + (" (on the role created)" if result.role_arn else "") + ":")
    st.code(json.dumps(result.reader_policy, indent=2), language="json")
    if connect:
        signin.record("setting_changed", {"connect_aws": trail, "region": region, "changes": result.changed})
        if not any(getattr(source, "queue", None) == result.queue_url for source in current.sources):
            source = config.SqsSource(name=f"trail-{trail}", queue=result.queue_url, buckets=[result.bucket],
                                      region=region)
            if forms.save_source(current, source):
                st.success(f"Source {plain(source.name)} added: press **Sync** to read the queue.",
                           icon=":material/check_circle:")
