"""`python -m trailstream`: sync, backfill, import, demo, status and the commands built on them.

Every command prints a one-line summary, exits 0 on success and non-zero when anything failed, and reports
problems as sentences on stderr, never as tracebacks.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from contextlib import closing
from datetime import date, datetime, timezone

from tqdm import tqdm

from trailstream.cache import store
from trailstream.config import AwsAccess
from trailstream.ingest import sync

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-11-27") from None


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a time like 2026-11-27T12:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def _add_access_options(command: argparse.ArgumentParser) -> None:
    """The AWS credential options every command that reads AWS shares."""
    command.add_argument("--profile", help="AWS profile (default: the default credential chain)")
    command.add_argument("--role-arn", help="role to assume, e.g. in another account")
    command.add_argument("--external-id", help="external ID the role's trust policy requires")


def _access(args, region: str | None = None) -> AwsAccess:
    """The command's AWS credential options as one value; bad values stop the command with a sentence."""
    access = AwsAccess(args.profile or "", region or "", args.role_arn or "", args.external_id or "")
    if access.problems():
        raise CommandError("; ".join(access.problems()))
    return access


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: global options, then each group of commands."""
    parser = argparse.ArgumentParser(prog="python -m trailstream", description="TrailStream: AWS CloudTrail monitoring.")
    parser.add_argument("--db", default=None, help="cache file (default: $TRAILSTREAM_DB, else db in the settings file, else ./trailstream.db)")
    parser.add_argument("--config", default=None, help="settings file (default: $TRAILSTREAM_CONFIG, else ./trailstream.toml)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--no-alerts", action="store_true", help="do not check alert rules after a sync")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in (_aws_commands, _local_commands, _question_commands, _running_commands):
        add_commands(commands)
    return parser


def _aws_commands(commands) -> None:
    """Commands that read or change AWS: sync, backfill, lookup, setup, policy."""
    sync_cmd = commands.add_parser("sync", help="pull new log files announced on an SQS queue (or every configured source)")
    sync_cmd.add_argument("--queue", help="queue name or URL; without it every source in the settings file is synced")
    sync_cmd.add_argument("--bucket", action="append", default=[], help="trail bucket this queue serves (repeatable)")
    sync_cmd.add_argument("--region", help="the queue's region (default: from the queue URL or the profile)")
    _add_access_options(sync_cmd)
    sync_cmd.add_argument("--max-messages", type=_positive)

    backfill_cmd = commands.add_parser("backfill", help="import a date range of log files straight from S3")
    backfill_cmd.add_argument("location", metavar="s3://BUCKET[/PREFIX]")
    backfill_cmd.add_argument("--since", type=_date, required=True)
    backfill_cmd.add_argument("--until", type=_date)
    backfill_cmd.add_argument("--account", action="append", default=[])
    backfill_cmd.add_argument("--region", action="append", default=[], help="only these regions' log files (repeatable)")
    _add_access_options(backfill_cmd)

    lookup_cmd = commands.add_parser("lookup", help="read Event history (the last 90 days, no trail needed) via LookupEvents")
    lookup_cmd.add_argument("--since", type=_date, help="first day to read (default: 90 days ago)")
    lookup_cmd.add_argument("--until", type=_date, help="last day to read (default: today)")
    lookup_cmd.add_argument("--region", action="append", default=[], help="only these regions (repeatable; default: every enabled region)")
    _add_access_options(lookup_cmd)

    setup_cmd = commands.add_parser("setup", help="wire an existing trail to an SQS queue (SNS topic, queue, policies) in one command")
    setup_cmd.add_argument("--trail", required=True, help="name of the existing trail")
    setup_cmd.add_argument("--region", help="the trail's home region (default: the profile's)")
    _add_access_options(setup_cmd)
    setup_cmd.add_argument("--dry-run", action="store_true", help="print the plan and change nothing")
    setup_cmd.add_argument("--create-role", action="store_true", help="also create the least-privilege reader role")
    setup_cmd.add_argument("--eventbridge", action="store_true",
                           help="also send CloudTrail's EventBridge events to the queue, for alerts in seconds")
    setup_cmd.add_argument("--read-only-events", action="store_true",
                           help="with --eventbridge, include read-only management events (Describe/Get/List)")

    policy_cmd = commands.add_parser("policy", help="the least-privilege IAM policy for what a principal did")
    policy_cmd.add_argument("principal", metavar="PRINCIPAL", help="user, role (all its sessions) or role/session")
    policy_cmd.add_argument("--since", type=_date, required=True)
    policy_cmd.add_argument("--until", type=_date)
    policy_cmd.add_argument("--format", choices=("json", "text"), default="text",
                            help="json: the policy document alone (refused and unmapped calls go to stderr)")


def _local_commands(commands) -> None:
    """Commands that bring files in or write them out: import, compact, athena-ddl, demo."""
    import_cmd = commands.add_parser("import", help="import local *.json / *.json.gz files and folders")
    import_cmd.add_argument("paths", nargs="+", metavar="PATH")

    compact_cmd = commands.add_parser("compact", help="write log files (local, or s3://TRAIL[/PREFIX] with --since) to the Parquet lake")
    compact_cmd.add_argument("--to", required=True, metavar="s3://LAKE/PREFIX|FOLDER")
    compact_cmd.add_argument("--since", type=_date, help="local files: only events on or after this day; "
                             "S3: files delivered on or after this day (all their events)")
    compact_cmd.add_argument("paths", nargs="*", metavar="PATH",
                             help="a file, a folder, or s3://TRAIL-BUCKET[/PREFIX]; none: the configured local and S3 sources")
    ddl_cmd = commands.add_parser("athena-ddl", help="the Athena tables over the lake (and the raw CloudTrail JSON)")
    ddl_cmd.add_argument("--apply", action="store_true", help="run the statements on Athena ([backend] settings)")

    demo_cmd = commands.add_parser("demo", help="fill the cache with generated demo activity")
    demo_cmd.add_argument("--events", type=_positive, default=20_000)
    demo_cmd.add_argument("--seed", type=int, default=7)
    demo_cmd.add_argument("--end", type=_moment, help="time of the newest demo event (default: now)")


def _question_commands(commands) -> None:
    """Commands that answer from the cache: status, retry, findings, query, report."""
    commands.add_parser("status", help="what the cache holds")
    commands.add_parser("retry", help="fetch and import again the files recorded as failed")

    findings_cmd = commands.add_parser("findings", help="security findings")
    findings_cmd.add_argument("--since", type=_date)
    findings_cmd.add_argument("--format", choices=("json", "table"), default="table")

    query_cmd = commands.add_parser("query", help="run a read-only SQL query over the cache")
    query_cmd.add_argument("sql")
    query_cmd.add_argument("--format", choices=("csv", "json", "table"), default="table")

    report_cmd = commands.add_parser("report", help="write a saved report")
    report_cmd.add_argument("name")
    report_cmd.add_argument("--output")


def _running_commands(commands) -> None:
    """Commands that keep things running or checked: rules, alerts, watch, check, rebuild, verify."""
    rules_cmd = commands.add_parser("rules", help="community (Sigma) detection rules")
    rules_actions = rules_cmd.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    rules_actions.add_parser("list", help="each rule: converted, unsupported or failed (with the reason), and matches")
    rules_actions.add_parser("fetch", help="download the pinned SigmaHQ commit's CloudTrail rules, each file "
                                               "checked against its pinned SHA-256, into sigma-rules/")

    alerts_cmd = commands.add_parser("alerts", help="alert rules")
    alerts_cmd.add_subparsers(dest="alerts_command", required=True, metavar="ACTION").add_parser(
        "run", help="evaluate the enabled rules once and send what is due"
    )

    watch_cmd = commands.add_parser("watch", help="sync every configured source, then alerts, in a loop")
    watch_cmd.add_argument("--every", default="5m", help="interval such as 30s, 5m, 1h")
    watch_cmd.add_argument("--compact-to", metavar="s3://LAKE/PREFIX|FOLDER",
                           help="after each sync, also write the events it brought to the Parquet lake")

    commands.add_parser("check", help="SQLite's integrity check, then the rollups and word index against events")
    rebuild_cmd = commands.add_parser("rebuild", help="re-read every stored file from its source into a fresh cache")
    rebuild_cmd.add_argument("--to", required=True, metavar="NEW.db", help="the fresh cache to write (must not exist)")

    verify_cmd = commands.add_parser("verify", help="check log file integrity against CloudTrail's signed digests")
    verify_cmd.add_argument("--since", type=_date)
    verify_cmd.add_argument("--until", type=_date)
    verify_cmd.add_argument("--account", action="append", default=[])
    verify_cmd.add_argument("--region", action="append", default=[])
    verify_cmd.add_argument("--format", choices=("table", "json"), default="table")
    verify_cmd.add_argument("--public-keys", metavar="FILE", help="keys as ListPublicKeys returns them, for offline use")


class Progress:
    """A tqdm bar on stderr fed by the sync progress callback."""

    def __init__(self, enabled: bool, label: str):
        self.bar = tqdm(desc=label, unit="file", disable=not enabled, file=sys.stderr, leave=False)
        self.show_current = label == "lookup"  # a lookup's progress is the day it has reached, not a file count

    def __call__(self, progress: sync.SyncProgress) -> None:
        if progress.files_total is not None and self.bar.total != progress.files_total:
            self.bar.total = progress.files_total
        self.bar.n = progress.files_done
        self.bar.set_postfix(events=f"{progress.new_events:,}", **({"at": progress.current} if self.show_current else {}),
                             refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def print_result(result: sync.SyncResult) -> int:
    for name, reason in result.failures[:20]:
        print(f"failed: {name}: {reason}", file=sys.stderr)
    if len(result.failures) > 20:
        print(f"... and {len(result.failures) - 20} more failures (see `status`)", file=sys.stderr)
    print(result.summary())
    return EXIT_OK if result.succeeded else EXIT_FAILED


def _with_progress(args, label, run) -> int:
    """Run a sync with a progress bar, print its summary, then check the alert rules on what arrived."""
    progress = Progress(not args.quiet and sys.stderr.isatty(), label)
    try:
        results = run(progress)
    finally:
        progress.close()
    results = results if isinstance(results, list) else [results]
    codes = [print_result(result) for result in results]
    if not args.no_alerts and any(result.new_events for result in results):
        _run_alerts_after_sync(args)
    return max(codes, default=EXIT_OK)


def _run_alerts_after_sync(args) -> None:
    """The post-sync step follows every sync; its outcome is printed, while the exit code stays the sync's."""
    from trailstream import jobs

    try:
        settings = _settings(args)
    except CommandError as exc:
        print(f"alerts not checked: {exc}", file=sys.stderr)
        return
    print(jobs.after_sync(args.db, settings).summary())


def command_import(args) -> int:
    return _with_progress(args, "import", lambda progress: sync.import_paths(args.db, args.paths, progress))


def _compact_inputs(args, access) -> tuple[list[str], list[tuple[str, AwsAccess, date | None]]]:
    """Local paths and S3 reads (location, access, first day): the PATHs given, else the configured local and S3
    sources (an SQS source is not read by `compact`)."""
    from trailstream.config import LocalSource, S3Source

    if args.paths:
        return ([path for path in args.paths if not path.startswith("s3://")],
                [(path, access, args.since) for path in args.paths if path.startswith("s3://")])
    sources = _settings(args).sources
    local = [str(_settings(args).resolve(s.path)) for s in sources if isinstance(s, LocalSource)]
    reads = [(f"s3://{s.bucket}/{s.prefix}", s.access, args.since or (date.fromisoformat(s.since) if s.since else None))
             for s in sources if isinstance(s, S3Source)]
    if not local and not reads:
        raise CommandError("no PATH given and no local or S3 source configured: name files, folders or s3://TRAIL")
    return local, reads


def command_compact(args) -> int:
    from trailstream.config import BackendSettings
    from trailstream.ingest import lake

    local, reads = _compact_inputs(args, BackendSettings.from_section(_settings(args).section("backend")).access)
    if any(since is None for _, _, since in reads):
        raise CommandError("compacting from S3 needs --since YYYY-MM-DD (or `since` on the S3 source): the first day "
                           "of log files to read")
    since = args.since.isoformat() + "T00:00:00Z" if args.since else None
    try:
        results = [lake.compact_s3(args.to, location, first, access) for location, access, first in reads]
        results += [lake.compact_paths(args.to, local, since)] if local else []
    except lake.LakeError as exc:
        raise CommandError(str(exc)) from None
    for result in results:
        for name, reason in result.failures[:20]:
            print(f"failed: {name}: {reason}", file=sys.stderr)
        print(result.summary())
    return EXIT_FAILED if any(result.failures for result in results) else EXIT_OK


def command_athena_ddl(args) -> int:
    from trailstream.config import BackendSettings
    from trailstream.ingest import lake, lake_ddl

    backend = BackendSettings.from_section(_settings(args).section("backend"))
    if backend.problems():
        raise CommandError("; ".join(backend.problems()))
    try:
        statements = lake_ddl.athena_statements(backend)
    except lake.LakeError as exc:
        raise CommandError(str(exc)) from None
    print(";\n\n".join(statements) + ";")
    if args.apply:
        from trailstream.ingest import athena

        for statement in statements:
            athena.run_query(backend, statement)
        print(f"applied {len(statements)} statement(s) in Athena workgroup {backend.workgroup}", file=sys.stderr)
    return EXIT_OK


def command_demo(args) -> int:
    return _with_progress(
        args, "demo", lambda progress: sync.import_demo(args.db, args.events, args.seed, args.end, progress)
    )


def command_sync(args) -> int:
    if args.queue:
        from trailstream.ingest import aws_sync

        if not args.bucket:
            raise CommandError("--bucket is required with --queue: name the trail bucket(s) this queue serves")
        return _with_progress(
            args,
            "sync",
            lambda progress: aws_sync.sync_queue(
                args.db,
                args.queue,
                args.bucket,
                _access(args, args.region),
                max_messages=args.max_messages,
                progress=progress,
            ),
        )
    from trailstream import jobs

    settings = _settings(args)
    if not settings.sources:
        raise CommandError(
            f"no sources are configured in {settings.path}; add one on the app's Sources & settings page "
            "or pass --queue and --bucket"
        )
    return _with_progress(args, "sync", lambda progress: jobs.run_configured_sync(settings, args.db, progress))


def command_backfill(args) -> int:
    from trailstream.ingest import aws_sync

    if not args.location.startswith("s3://") or len(args.location) <= 5:
        raise CommandError(f"{args.location!r} is not an S3 location like s3://my-trail-bucket/optional/prefix")
    bucket, _, prefix = args.location[5:].partition("/")
    if args.until and args.until < args.since:
        raise CommandError("--until is before --since")
    return _with_progress(
        args,
        "backfill",
        lambda progress: aws_sync.backfill(
            args.db,
            bucket,
            prefix,
            since=args.since,
            until=args.until,
            accounts=args.account or None,
            regions=args.region or None,
            access=_access(args),
            progress=progress,
        ),
    )


def command_lookup(args) -> int:
    from trailstream.ingest import lookup

    if args.since and args.until and args.until < args.since:
        raise CommandError("--until is before --since")
    access = _access(args)
    return _with_progress(args, "lookup", lambda progress: lookup.lookup_events(
        args.db, access, args.region or None, args.since, args.until, progress))


def command_setup(args) -> int:
    from trailstream.ingest import aws, setup

    access = _access(args, args.region)
    try:
        result = setup.setup_trail(access, args.trail, args.dry_run, args.create_role, args.eventbridge,
                                   args.read_only_events)
    except aws.SourceError as exc:
        print(f"setup stopped: {exc}. Run it again once fixed: it finishes what is missing.", file=sys.stderr)
        return EXIT_FAILED
    print(setup.describe_setup(result, args.trail, access.region))
    return EXIT_OK


def command_policy(args) -> int:
    from datetime import timedelta

    from trailstream.analytics import policy
    from trailstream.filters import EventFilter

    if args.until and args.until < args.since:
        raise CommandError("--until is before --since")
    end = f"{(args.until + timedelta(days=1)).isoformat()}T00:00:00Z" if args.until else None
    event_filter = EventFilter(start=f"{args.since.isoformat()}T00:00:00Z", end=end)
    with closing(_readonly(args)) as conn:
        found = policy.observed_policy(conn, event_filter, args.principal)
    if not found.document["Statement"] and not found.denied.height and not found.unmapped.height:
        raise CommandError(f'no calls by "{args.principal}" in the cache since {args.since}: check the name '
                           "(a role's name covers all its sessions) and the dates")
    print(found.to_json())
    notes = policy.policy_notes(found)
    if notes:  # in json format stdout stays a policy document a tool can read
        print(notes, file=sys.stderr if args.format == "json" else sys.stdout)
    return EXIT_OK


def command_retry(args) -> int:
    from trailstream import jobs

    settings = _settings(args)
    return _with_progress(args, "retry", lambda progress: jobs.retry_failed_files(settings, args.db, progress))


def _readonly(args):
    from pathlib import Path

    if not Path(args.db).exists():
        raise CommandError(f"no cache at {args.db}: run `python -m trailstream demo` or `sync` first")
    return store.open_cache_readonly(args.db)


def command_status(args) -> int:
    from trailstream.analytics import queries

    summary = queries.query_cache_summary(_readonly(args))
    for label, value in summary.items():
        print(f"{label:>22}: {value}")
    return EXIT_OK


def command_findings(args) -> int:
    from dataclasses import replace

    import orjson

    from trailstream.analytics import backend as query_backend
    from trailstream.analytics import detections, security_queries
    from trailstream.filters import EventFilter
    from trailstream.ingest import aws
    from trailstream.timefmt import utc_now

    event_filter = EventFilter(start=f"{args.since.isoformat()}T00:00:00Z") if args.since else None
    try:
        detection_settings = detections.detection_settings(_settings(args))
    except detections.DetectionSettingsError as exc:
        raise CommandError(str(exc)) from None
    source = _findings_source(args)
    if not isinstance(source, sqlite3.Connection):  # the lake answers up to now: a kept Athena result never goes stale
        event_filter = replace(event_filter or EventFilter(), end=utc_now())
    try:
        result = security_queries.query_security_findings(source, event_filter, detection_settings,
                                                          _lake_rules(args, source))
    except (query_backend.LakeUnavailable, aws.SourceError) as exc:
        raise CommandError(f"the lake could not answer: {exc}") from None
    found = result.findings
    if result.note:  # on stderr: stdout keeps the JSON contract
        print(f"findings computed now: {result.note}", file=sys.stderr)
    if args.format == "json":
        print(orjson.dumps([f.to_dict() for f in found], option=orjson.OPT_INDENT_2).decode())
    else:
        print(detections.format_findings_table(found))
    return EXIT_OK


def _lake_rules(args, source):
    """On the lake, the Sigma rules the cache holds (None on the cache, or with no cache: no rules to run)."""
    from pathlib import Path

    from trailstream.analytics import sigma_queries

    if isinstance(source, sqlite3.Connection) or not Path(args.db).exists():
        return None
    with closing(store.open_cache_readonly(args.db)) as conn:
        return sigma_queries.query_lake_rules(conn)


def _findings_source(args):
    """The cache, or the lake while [backend] kind = "athena": DuckDB for a local folder, else Athena."""
    from pathlib import Path

    from trailstream.analytics import backend as query_backend
    from trailstream.config import BackendSettings
    from trailstream.ingest import athena

    chosen = BackendSettings.from_section(_settings(args).section("backend"))
    if chosen.kind != "athena":
        return _readonly(args)
    if chosen.problems():
        raise CommandError("; ".join(chosen.problems()) + ": fix [backend] in the settings file")
    if chosen.lake and "://" not in chosen.lake:
        try:
            return query_backend.duckdb_backend(chosen.lake)
        except query_backend.LakeUnavailable as exc:
            raise CommandError(str(exc)) from None
    runner = athena.AthenaRunner(chosen, Path(args.db).with_name("athena-results"))
    return query_backend.LakeBackend(query_backend.athena_table(chosen), "athena", runner.frame)


def command_query(args) -> int:
    from trailstream.analytics import sqlguard

    _readonly(args).close()
    try:
        result = sqlguard.run_query(args.db, args.sql)
    except (sqlguard.QueryRefused, sqlguard.QueryFailed) as exc:
        print(f"query refused: {exc}" if isinstance(exc, sqlguard.QueryRefused) else f"query failed: {exc}",
              file=sys.stderr)
        return EXIT_FAILED
    print(sqlguard.format_result(result, args.format))
    if result.notice and args.format != "table":
        print(result.notice, file=sys.stderr)
    return EXIT_OK


def command_rules(args) -> int:
    """`rules list` loads the configured rules into the cache and brings their match counts up to date (as the
    post-sync step does); `rules fetch` installs the pinned SigmaHQ rules."""
    from trailstream.analytics import sigma

    try:
        sigma_config = sigma.sigma_settings(_settings(args))
    except sigma.SigmaSettingsError as exc:
        raise CommandError(str(exc)) from None
    if args.rules_command == "fetch":
        try:
            count = sigma.fetch_release(sigma_config.release_url, sigma_config.release_sha256, sigma_config.fetch_folder)
        except sigma.FetchError as exc:
            print(f"rules not fetched: {exc}", file=sys.stderr)
            return EXIT_FAILED
        print(f"{count:,} rule file{'' if count == 1 else 's'} from {sigma_config.release_url} (every file's SHA-256 "
              f"as pinned for SigmaHQ commit {sigma.PINNED_COMMIT[:12]}) in {sigma_config.fetch_folder}")
        return EXIT_OK
    ruleset = sigma.configured_rules(sigma_config)
    for problem in ruleset.problems:
        print(problem, file=sys.stderr)
    with closing(store.open_cache(args.db)) as db:
        sigma.save_rules(db, ruleset, sigma_config)
        run = sigma.evaluate_new_events(db)  # counts up to date, as after a sync
    for problem in run.problems:
        print(problem, file=sys.stderr)
    with closing(store.open_cache_readonly(args.db)) as conn:
        print(sigma.format_rule_table(sigma.query_rule_table(conn)))
    return EXIT_FAILED if ruleset.problems or run.problems else EXIT_OK


def command_report(args) -> int:
    from trailstream.notify import reports

    try:
        path = reports.write_report(args.db, args.name, output=args.output, settings=args.loaded_settings)
    except reports.ReportError as exc:
        raise CommandError(str(exc)) from None
    print(f"report {args.name!r} written to {path}")
    return EXIT_OK


def command_alerts(args) -> int:
    from trailstream import jobs

    outcome = jobs.after_sync(args.db, _settings(args))
    print(outcome.summary())
    return EXIT_OK if outcome.succeeded else EXIT_FAILED


def command_watch(args) -> int:
    from trailstream import jobs
    from trailstream.notify import alerts

    try:
        every = alerts.parse_interval(args.every)
        if args.compact_to:
            from trailstream.ingest import lake

            lake.open_lake(args.compact_to)  # a bad lake location is refused before the first sync
    except ValueError as exc:  # lake.LakeError is a ValueError
        raise CommandError(str(exc)) from None
    jobs.watch(args.db, _settings(args), every, compact_to=args.compact_to)
    return EXIT_OK


def command_verify(args) -> int:
    import orjson

    from trailstream.analytics import integrity

    keys = _public_keys_file(args.public_keys) if args.public_keys else None
    if keys is None:
        _fetch_public_keys(args)
    report = integrity.verify_integrity(_readonly(args), keys, args.since, args.until, args.account, args.region)
    if args.format == "json":
        print(orjson.dumps(integrity.report_document(report), option=orjson.OPT_INDENT_2).decode())
    else:
        print(integrity.format_report_table(report))
    return EXIT_FAILED if report.failed else EXIT_OK


def _public_keys_file(path: str) -> dict[str, bytes]:
    from pathlib import Path

    from trailstream.analytics import integrity

    try:
        return integrity.parse_public_keys_file(Path(path).read_bytes())
    except OSError as exc:
        raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CommandError(f"{path}: {exc}") from None


def _fetch_public_keys(args) -> None:
    """Keys of stored digests not in the cache yet come from CloudTrail; without access, verification says so."""
    from trailstream.ingest import aws, integrity_sync

    _readonly(args).close()
    db = store.open_cache(args.db)
    try:
        _, problems = integrity_sync.fetch_missing_public_keys(db, aws.make_session(AwsAccess()))
    except aws.SourceError as exc:
        problems = [f"public keys not fetched: {exc}"]
    finally:
        db.close()
    for problem in problems:
        print(problem, file=sys.stderr)


def command_check(args) -> int:
    from trailstream.cache import check

    with closing(_readonly(args)) as conn:
        problems = check.check_problems(conn)
        events = conn.execute("SELECT count(*) FROM events").fetchone()[0] if not problems else None
    for problem in problems:
        print(f"problem: {problem}", file=sys.stderr)
    if problems:
        print(f"check: {len(problems)} problem(s) in {args.db}")
        return EXIT_FAILED
    print(f"check: {args.db} is sound: SQLite's integrity check passed, and the rollups and word index match its "
          f"{events:,} events")
    return EXIT_OK


def command_rebuild(args) -> int:
    from pathlib import Path

    from trailstream import jobs

    if Path(args.to).exists():
        raise CommandError(f"{args.to} already exists: rebuild writes a fresh cache, so name a file that does not exist")
    _readonly(args).close()
    progress = Progress(not args.quiet and sys.stderr.isatty(), "rebuild")
    try:
        outcome = jobs.rebuild_cache(_settings(args), args.db, args.to, progress)
    finally:
        progress.close()
    for name, reason in outcome.missing[:20]:
        print(f"not re-read: {name}: {reason}", file=sys.stderr)
    if len(outcome.missing) > 20:
        print(f"... and {len(outcome.missing) - 20} more (see `status` on {args.to})", file=sys.stderr)
    print(outcome.summary())
    return EXIT_FAILED if outcome.missing else EXIT_OK


def _settings(args):
    """The settings file, read once per command; a file with problems stops the command with them."""
    if args.loaded_settings.errors:
        raise CommandError("; ".join(args.loaded_settings.errors))
    return args.loaded_settings


COMMANDS = {
    "import": command_import,
    "demo": command_demo,
    "compact": command_compact,
    "athena-ddl": command_athena_ddl,
    "sync": command_sync,
    "backfill": command_backfill,
    "lookup": command_lookup,
    "setup": command_setup,
    "policy": command_policy,
    "retry": command_retry,
    "status": command_status,
    "findings": command_findings,
    "query": command_query,
    "report": command_report,
    "alerts": command_alerts,
    "watch": command_watch,
    "check": command_check,
    "rebuild": command_rebuild,
    "rules": command_rules,
    "verify": command_verify,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        from trailstream import config

        args.loaded_settings = config.load_settings(args.config)
        # --db, else TRAILSTREAM_DB, else `db` in the settings file, else ./trailstream.db: the app's order too.
        args.db = args.db or args.loaded_settings.db_path()
        return COMMANDS[args.command](args)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (store.SyncAlreadyRunning, sync.DemoRefused, sync.CacheFull) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (sqlite3.DatabaseError, store.CacheUnreadable) as exc:
        from trailstream.cache import check

        print(f"error: {check.describe_unreadable(args.db, exc)}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:
        if os.environ.get("TRAILSTREAM_DEBUG"):
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (set TRAILSTREAM_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted: everything committed so far is kept; run the command again to continue", file=sys.stderr)
        return 130
