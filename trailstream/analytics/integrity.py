"""Log integrity and coverage: CloudTrail's signed digest chain checked against the files already in the cache.

A join plus signature checks, never a download. Every digest, every listed or stored log file and every hour of
every account and region gets one state, with the reason when it is not verified.
"""

from __future__ import annotations

import base64
import functools
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

import orjson
import polars as pl
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from trailstream import catalog
from trailstream.cache import integrity as tables
from trailstream.timefmt import iso_utc

SIGNATURE_ALGORITHM = "SHA256withRSA"
UNREFERENCED_AFTER = timedelta(hours=6)  # the hour, its digest an hour later, and room for a backfill digest
GAP_TOLERANCE = timedelta(minutes=5)
MAX_BREAK_HOURS = 24 * 366  # hours listed per chain break, the latest: a forged digest years away stays one year
TRUSTED_LISTINGS = ("verified", "unchecked", "unknown key")  # digests whose logFiles count as a listing
DIGEST_FAILURES = ("signature invalid", "moved", "malformed", "missing", "unknown key")
FILE_FAILURES = ("modified", "missing", "unreadable", "trailing data", "unreferenced")
# Hour states, worst first: an hour shows the worst of its digests and files.
HOUR_STATES = ("modified", "missing", "invalid digest", "unreferenced", "gap", "pending", "verified", "validation off")
_HOUR_STATE_OF = {
    "verified": "verified", "unchecked": "pending", "pending": "pending", "unknown key": "invalid digest",
    "signature invalid": "invalid digest", "moved": "invalid digest", "malformed": "invalid digest",
    "missing": "missing", "unreadable": "missing", "modified": "modified", "trailing data": "modified",
    "gap": "gap", "unreferenced": "unreferenced", "not validated": "validation off",
}
_TAIL = r"(AWSLogs/.*)$"
_LOG_KEY = (r"AWSLogs/(?:o-[a-z0-9]+/)?(?P<account_id>\d{12})/CloudTrail/(?P<region>[a-z0-9-]+)/\d{4}/\d\d/\d\d/"
            r"\d{12}_CloudTrail_[a-z0-9-]+_(?P<stamp>\d{8}T\d{4})Z")
ROW_SCHEMA = {"account_id": pl.String, "region": pl.String, "hour": pl.Datetime("us", "UTC"), "key": pl.String,
              "state": pl.String, "reason": pl.String, "digest_key": pl.String}


def string_to_sign(end_time: str, bucket: str, object_key: str, sha256_hex: str, previous_signature: str | None) -> bytes:
    """The four lines CloudTrail signs: end time verbatim, bucket/object, the digest's SHA-256, previous signature."""
    return "\n".join((end_time, f"{bucket}/{object_key}", sha256_hex, previous_signature or "null")).encode()


def load_public_key(der: bytes) -> rsa.RSAPublicKey | None:
    """A CloudTrail public key from DER, SubjectPublicKeyInfo or PKCS#1; None if it is neither."""
    for loader in (serialization.load_der_public_key, _load_pkcs1):
        try:
            key = loader(der)
        except (ValueError, TypeError):
            continue
        return key if isinstance(key, rsa.RSAPublicKey) else None
    return None


def _load_pkcs1(der: bytes):
    pem = b"-----BEGIN RSA PUBLIC KEY-----\n" + base64.encodebytes(der) + b"-----END RSA PUBLIC KEY-----\n"
    return serialization.load_pem_public_key(pem)


def signature_valid(key: rsa.RSAPublicKey, message: bytes, signature_hex: str) -> bool:
    """RSASSA-PKCS1-v1_5 with SHA-256, the only algorithm CloudTrail uses."""
    try:
        key.verify(bytes.fromhex(signature_hex), message, padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


@functools.lru_cache(maxsize=64)
def _cached_key(der: bytes) -> rsa.RSAPublicKey | None:
    return load_public_key(der)


@functools.lru_cache(maxsize=1 << 17)
def _checked_signature(der: bytes, message: bytes, signature_hex: str) -> bool:
    """Remembered per process: after a sync, only the new digests cost an RSA check (the page, alerts, watch)."""
    return signature_valid(_cached_key(der), message, signature_hex)


def parse_public_keys_file(text: str | bytes) -> dict[str, bytes]:
    """Keys by fingerprint from JSON shaped like ListPublicKeys' answer; ValueError with a sentence if it is not."""
    try:
        items = orjson.loads(text)["PublicKeyList"]
        return {item["Fingerprint"]: base64.b64decode(item["Value"], validate=True) for item in items}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ValueError('not a public keys file: expected {"PublicKeyList": [{"Value": "<base64 DER>", '
                         f'"Fingerprint": "..."}}, ...]}} ({type(exc).__name__}: {exc})') from None


@dataclass
class IntegrityReport:
    """Per digest, per log file and per hour states; rows carry account, region, hour, key, state and reason."""

    digests: pl.DataFrame
    log_files: pl.DataFrame  # problem and unlisted files only: verified ones are counted in SQL
    hours: pl.DataFrame
    listed: int = 0  # log files trusted digests list, and how many of them are verified
    listed_verified: int = 0

    @property
    def failed(self) -> bool:
        """Whether anything counts against the trail: the exit code of `verify`."""
        return bool(self.digests["state"].is_in(DIGEST_FAILURES).any() or
                    self.log_files["state"].is_in(FILE_FAILURES).any())

    def problems(self) -> pl.DataFrame:
        """Every digest and log file that is not verified (pending ones aside), digests first."""
        return pl.concat([
            self.digests.filter(~pl.col("state").is_in(("verified", "unchecked"))).with_columns(kind=pl.lit("digest")),
            self.log_files.filter(~pl.col("state").is_in(("verified", "pending", "not validated")))
                .with_columns(kind=pl.lit("log file")),
        ]).select("kind", "state", "account_id", "region", "hour", "key", "reason")

    def counts(self) -> dict:
        """validate-logs' figures: valid/checked digests and log files, and the digests not checked."""
        unlisted = self.log_files.filter(pl.col("state") == "unreferenced").height
        checked = self.digests.filter(pl.col("state") != "unchecked")
        return {"digests_valid": int((checked["state"] == "verified").sum()), "digests": checked.height,
                "digests_unchecked": self.digests.height - checked.height,
                "log_files_valid": self.listed_verified, "log_files": self.listed + unlisted}


def verify_integrity(conn: sqlite3.Connection, keys: dict[str, bytes] | None = None, since: date | None = None,
                     until: date | None = None, accounts=(), regions=(), now: datetime | None = None) -> IntegrityReport:
    """Check every stored digest and log file (keys: extra public keys by fingerprint, beside the cache's)."""
    now = now or datetime.now(timezone.utc)
    all_keys = {**tables.query_public_keys(conn), **(keys or {})}
    low, high = _margins(since, until)
    scope = (accounts, regions, low, high)
    checked = check_digests(tables.query_digests(conn, *scope), all_keys)
    chain = chain_breaks(checked, tables.query_trail_changes(conn, catalog.LOGGING_GAP_EVENTS))
    untrusted = checked.filter(~pl.col("state").is_in(TRUSTED_LISTINGS))["digest_id"].to_list()
    counted = tables.query_listing_counts(conn, *scope)
    with_problems = counted.filter(pl.col("verified") < pl.col("listed"))["digest_id"].to_list()
    listed = check_listed_files(tables.query_listed_problems(conn, with_problems), checked)
    unlisted = check_unlisted_files(tables.query_unlisted_log_files(conn, low, high, untrusted), checked, now,
                                    accounts, regions)
    totals = _in_range(counted.join(
        checked.filter(pl.col("state").is_in(TRUSTED_LISTINGS)).select("digest_id", "hour"), on="digest_id"),
        since, until)
    digests = pl.concat([_with_listing_counts(checked, totals).select(list(ROW_SCHEMA)), chain.select(list(ROW_SCHEMA))])
    log_files = pl.concat([listed.select(list(ROW_SCHEMA)), unlisted.select(list(ROW_SCHEMA))])
    digests, log_files = (_in_range(frame, since, until).sort("account_id", "region", "hour", "key")
                          for frame in (digests, log_files))
    return IntegrityReport(digests, log_files, hour_states(digests, log_files), int(totals["listed"].sum()),
                           int(totals["verified"].sum()))


def _with_listing_counts(checked: pl.DataFrame, totals: pl.DataFrame) -> pl.DataFrame:
    """A verified digest's reason says how many of its listed log files are stored unaltered."""
    return checked.join(totals.select("digest_id", "listed", "verified"), on="digest_id", how="left").with_columns(
        reason=pl.when((pl.col("state") == "verified") & pl.col("listed").is_not_null())
        .then(pl.format("{} of {} listed log file(s) stored with the listed SHA-256", "verified", "listed"))
        .when(pl.col("state") == "verified").then(pl.lit("lists no log file: no activity this hour"))
        .otherwise(pl.col("reason")))


def check_digests(digests: pl.DataFrame, keys: dict[str, bytes]) -> pl.DataFrame:
    """Each digest's state: malformed, moved, unchecked (no signature known), unknown key, signature invalid, verified."""
    successors = digests.filter(pl.col("previous_object").is_not_null()).select(
        pl.col("previous_object").str.extract(_TAIL).alias("tail"),
        pl.col("previous_signature").alias("successor_signature"),
        pl.col("previous_hash").alias("successor_hash"),
    ).unique("tail", keep="first")
    frame = digests.join(successors, on="tail", how="left").with_columns(
        pl.col("start").fill_null(pl.col("end") - pl.duration(hours=1)),
    )
    outcomes = [_digest_state(row, keys.get) for row in frame.iter_rows(named=True)]
    return frame.with_columns(
        state=pl.Series([state for state, _ in outcomes], dtype=pl.String),
        reason=pl.Series([reason for _, reason in outcomes], dtype=pl.String),
        hour=pl.col("start").dt.truncate("1h"),
        digest_key=pl.lit(None, pl.String),
    ).with_columns(key=_display_key())


def _display_key() -> pl.Expr:
    return pl.when(pl.col("bucket") == "").then(pl.col("key")).otherwise(pl.format("s3://{}/{}", "bucket", "key"))


def _digest_state(row: dict, key_for) -> tuple[str, str]:
    if row["error"]:
        return "malformed", row["error"]
    if row["signature_algorithm"] != SIGNATURE_ALGORITHM:
        return "malformed", f"unsupported signature algorithm {row['signature_algorithm']!r}"
    if where := _moved(row):
        return "moved", where
    signature = row["signature"] or row["successor_signature"]
    if not signature:
        return "unchecked", ("no signature known: it is in the S3 object's metadata, which a copy made with "
                             "`aws s3 sync` lacks, and no later digest vouches for it yet")
    der = key_for(row["fingerprint"])
    if der is None or _cached_key(der) is None:
        return "unknown key", (f"no public key with fingerprint {row['fingerprint']}: sync with AWS access or pass "
                               "--public-keys FILE")
    message = string_to_sign(row["end_time"], row["digest_s3_bucket"], row["digest_s3_object"], row["sha256"],
                             row["previous_signature"])
    if not _checked_signature(der, message, signature):
        source = "its S3 metadata" if row["signature"] else "the next digest"
        return "signature invalid", f"the signature from {source} does not match this digest: altered or forged"
    if row["successor_hash"] and row["successor_hash"] != row["sha256"]:
        return "signature invalid", "the next digest's previousDigestHashValue does not match this digest's content"
    return "verified", ""


def _moved(row: dict) -> str:
    """Why the digest is not where its own content says it was written, or ''."""
    if row["bucket"]:
        if (row["bucket"], row["key"]) == (row["digest_s3_bucket"], row["digest_s3_object"]):
            return ""
    elif row["tail"] == tables.object_tail(row["digest_s3_object"]):
        return ""
    return f"found at a key other than the one it names (s3://{row['digest_s3_bucket']}/{row['digest_s3_object']})"


def chain_breaks(checked: pl.DataFrame, trail_changes: pl.DataFrame) -> pl.DataFrame:
    """Missing hours and logging gaps between consecutive digests of each account, region and trail."""
    group = ["account_id", "region", "trail"]
    pairs = (
        checked.filter((pl.col("state") != "moved") & pl.col("end").is_not_null())
        .sort(*group, "start")
        .with_columns(prev_end=pl.col("end").shift(1).over(group), prev_hour=pl.col("hour").shift(1).over(group))
        .filter(pl.col("prev_end").is_not_null()
                & ((pl.col("start") - pl.col("prev_end") > GAP_TOLERANCE)
                   | (pl.col("previous_object").is_null() & (pl.col("state") != "malformed"))))
    )
    frames = [_break_rows(pair, trail_changes) for pair in pairs.iter_rows(named=True)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=ROW_SCHEMA)


def _break_rows(pair: dict, trail_changes: pl.DataFrame) -> pl.DataFrame:
    base = (pair["account_id"], pair["region"])
    if pair["previous_object"] is not None or pair["state"] == "malformed":
        hours = max(1, round((pair["start"] - pair["prev_end"]) / timedelta(hours=1)))
        missing = _hour_rows(base, pair["prev_hour"] + timedelta(hours=1), hours, "", "missing",
                             "no digest for this hour")
        if not pair["previous_object"]:
            return missing
        last = pl.col("hour") == pl.col("hour").max()
        return missing.with_columns(
            key=pl.when(last).then(pl.lit(pair["previous_object"])).otherwise("key"),
            reason=pl.when(last).then(pl.lit("the next digest links to it, but it is not in the cache or the bucket"))
            .otherwise("reason"))
    low, high = pair["prev_end"] - timedelta(hours=1), pair["start"] + timedelta(hours=1)
    calls = trail_changes.filter(pl.col("event_time").is_between(low, high))
    explained = "; ".join(f"{c['event_name']} at {iso_utc(c['event_time'])} by {c['principal']}"
                          for c in calls.head(5).iter_rows(named=True))
    reason = (f"logging or log file validation was off from {iso_utc(pair['prev_end'])} to {iso_utc(pair['start'])}: "
              + (explained or "no StopLogging, StartLogging, UpdateTrail or PutEventSelectors call in the cache explains it"))
    first, last = pair["prev_hour"] + timedelta(hours=1), max(pair["prev_hour"] + timedelta(hours=1), pair["hour"] - timedelta(hours=1))
    count = int((last - first) / timedelta(hours=1)) + 1
    return _hour_rows(base, first, count, pair["key"], "gap", reason)


def _hour_rows(base: tuple, first: datetime, count: int, key: str, state: str, reason: str) -> pl.DataFrame:
    """The latest MAX_BREAK_HOURS of `count` hours from `first`, a row each: built by polars, since a forged digest
    a year away gives 8,784 of them."""
    start = first + timedelta(hours=max(0, count - MAX_BREAK_HOURS))
    hours = pl.datetime_range(start, first + timedelta(hours=count - 1), "1h", time_unit="us", eager=True)
    return pl.DataFrame({"hour": hours.dt.convert_time_zone("UTC")}).select(
        account_id=pl.lit(base[0], pl.String), region=pl.lit(base[1], pl.String), hour="hour",
        key=pl.lit(key, pl.String), state=pl.lit(state), reason=pl.lit(reason), digest_key=pl.lit(None, pl.String))


def check_listed_files(listed: pl.DataFrame, checked: pl.DataFrame) -> pl.DataFrame:
    """Each problem log file a trusted digest lists: modified, missing, unreadable or with trailing data."""
    digests = checked.filter(pl.col("state").is_in(TRUSTED_LISTINGS)).select(
        "digest_id", "account_id", "region", "hour", digest_key=pl.col("key"))
    return listed.join(digests, on="digest_id").unique("s3_object", keep="first").with_columns(
        key=pl.col("s3_object"),
        state=pl.when(pl.col("file_id").is_null() | (pl.col("file_status") == "skipped")).then(pl.lit("missing"))
        .when(pl.col("file_status") == "failed").then(pl.lit("unreadable"))
        .when(pl.col("trailing_data")).then(pl.lit("trailing data"))
        .when(pl.col("file_sha256") != pl.col("hash_value")).then(pl.lit("modified"))
        .otherwise(pl.lit("verified")),
    ).with_columns(
        reason=pl.when(pl.col("state") == "missing").then(pl.lit("listed by its digest but never stored"))
        .when(pl.col("state") == "unreadable").then(pl.format("listed, but could not be read: {}", "file_error"))
        .when(pl.col("state") == "trailing data").then(pl.lit("gzip data after the first member: appended content"))
        .when(pl.col("state") == "modified").then(pl.lit("SHA-256 differs from the digest's: content changed"))
        .otherwise(pl.lit("")),
    )


def check_unlisted_files(unlisted: pl.DataFrame, checked: pl.DataFrame, now: datetime, accounts=(),
                         regions=()) -> pl.DataFrame:
    """Stored log files no trusted digest lists: pending while recent, unreferenced where digests cover the time."""
    coverage = checked.filter(pl.col("end").is_not_null()).group_by("account_id", "region").agg(
        first=pl.col("start").min(), last=pl.col("end").max())
    delivered = pl.col("stamp").str.to_datetime("%Y%m%dT%H%M", time_zone="UTC", strict=False)
    frame = (
        unlisted.with_columns(pl.col("key").str.extract_groups(_LOG_KEY).alias("parts")).unnest("parts")
        .filter(pl.col("account_id").is_not_null())
        .filter(pl.col("account_id").is_in(list(accounts)) if accounts else pl.lit(True))
        .filter(pl.col("region").is_in(list(regions)) if regions else pl.lit(True))
        .with_columns(delivered=delivered)
        .join(coverage, on=["account_id", "region"], how="left")
    )
    covered = pl.col("delivered").is_between(pl.col("first") - timedelta(hours=1), pl.col("last") + timedelta(hours=1))
    return frame.with_columns(
        hour=pl.col("delivered").dt.truncate("1h"),
        digest_key=pl.lit(None, pl.String),
        state=pl.when(pl.col("delivered") + UNREFERENCED_AFTER > now).then(pl.lit("pending"))
        .when(covered).then(pl.lit("unreferenced")).otherwise(pl.lit("not validated")),
    ).with_columns(
        reason=pl.when(pl.col("state") == "unreferenced")
        .then(pl.lit("no valid digest lists this file although digests cover its hour: possibly injected"))
        .when(pl.col("state") == "pending").then(pl.lit("its digest is not due yet"))
        .otherwise(pl.lit("no digests for this account and region at this time (log file validation off)")),
    )


def hour_states(digests: pl.DataFrame, log_files: pl.DataFrame) -> pl.DataFrame:
    """One state per account, region and hour: the worst of its digests and files, with the count of problems."""
    rank = {state: position for position, state in enumerate(HOUR_STATES)}
    rows = pl.concat([digests.select("account_id", "region", "hour", "state"),
                      log_files.select("account_id", "region", "hour", "state")])
    return (
        rows.with_columns(rank=pl.col("state").replace_strict(_HOUR_STATE_OF, default="pending")
                          .replace_strict(rank, return_dtype=pl.Int32))
        .group_by("account_id", "region", "hour")
        .agg(rank=pl.col("rank").min(), problems=(pl.col("rank") < rank["pending"]).sum().cast(pl.Int64))
        .with_columns(state=pl.col("rank").replace_strict(dict(enumerate(HOUR_STATES)), return_dtype=pl.String))
        .drop("rank")
        .sort("account_id", "region", "hour")
    )


def _margins(since: date | None, until: date | None) -> tuple[str | None, str | None]:
    """The range read from the cache: a day wider than asked, so the digests either side of it are there to link."""
    low = iso_utc(datetime.combine(since, datetime.min.time(), timezone.utc) - timedelta(days=1)) if since else None
    high = iso_utc(datetime.combine(until, datetime.min.time(), timezone.utc) + timedelta(days=2)) if until else None
    return low, high


def _in_range(frame: pl.DataFrame, since: date | None, until: date | None) -> pl.DataFrame:
    day = pl.col("hour").dt.date()
    if since:
        frame = frame.filter(day >= since)
    if until:
        frame = frame.filter(day <= until)
    return frame


def format_report_table(report: IntegrityReport) -> str:
    """A summary in the spirit of `aws cloudtrail validate-logs`, then every problem with where and why."""
    counts = report.counts()
    hours = report.hours["hour"]
    lines = [f"Results found for {iso_utc(hours.min())} to {iso_utc(hours.max() + timedelta(hours=1))}:"
             if hours.len() else "No digests or log files found in the cache for this range.", "",
             f"{counts['digests_valid']}/{counts['digests']} digest files valid",
             f"{counts['log_files_valid']}/{counts['log_files']} log files valid"]
    unchecked = report.digests.filter(pl.col("state") == "unchecked")
    if unchecked.height:
        lines.append(f"{unchecked.height} newest digest file(s) not checked: their signature is in S3 metadata, which "
                     "a local copy lacks (sync from S3 to read it); not a failure")
        lines += [f"  not checked: {row['account_id']} {row['region']} {row['key']}"
                  for row in unchecked.head(MAX_PRINTED).iter_rows(named=True)]
    problems = report.problems()
    for row in problems.head(MAX_PRINTED).iter_rows(named=True):
        lines.append(f"{row['state']}: {row['kind']} {row['account_id']} {row['region']} "
                     f"{iso_utc(row['hour'])} {row['key'] or '-'}: {row['reason']}")
    if problems.height > MAX_PRINTED:
        lines.append(f"... and {problems.height - MAX_PRINTED:,} more (use --format json for all)")
    return "\n".join(lines)


def report_document(report: IntegrityReport) -> dict:
    """The report as JSON-ready data: counts, every problem, and the state of every hour."""
    return {
        **report.counts(),
        "failed": report.failed,
        "problems": report.problems().with_columns(pl.col("hour").map_elements(iso_utc, pl.String)).to_dicts(),
        "not_checked": report.digests.filter(pl.col("state") == "unchecked")["key"].to_list(),
        "hours": report.hours.with_columns(pl.col("hour").map_elements(iso_utc, pl.String)).to_dicts(),
    }


MAX_PRINTED = 200


MAX_CELLS = 5_000  # heatmap cells (altair's row limit); beyond that, days (the worst hour) instead of hours
STATE_COLORS = {"modified": "#b2182b", "missing": "#e45756", "invalid digest": "#f58518", "unreferenced": "#b279a2",
                "gap": "#9d755d", "pending": "#bab0ac", "verified": "#54a24b", "validation off": "#e8e8e8"}


def query_integrity_report(conn: sqlite3.Connection, since: date | None = None, until: date | None = None,
                           accounts: tuple = (), regions: tuple = ()) -> IntegrityReport:
    """The report with the keys kept in the cache, for the page (which never fetches)."""
    return verify_integrity(conn, None, since, until, accounts, regions)


def heatmap_cells(hours: pl.DataFrame, max_cells: int = MAX_CELLS) -> pl.DataFrame:
    """Cells for the heatmap: one per account/region and hour, or per day (the worst hour) when there are too many."""
    cells = hours.with_columns(trail=pl.format("{} {}", "account_id", "region"), span=pl.lit("hour"))
    if cells.height > max_cells:
        rank = {state: position for position, state in enumerate(HOUR_STATES)}
        cells = (cells.with_columns(hour=pl.col("hour").dt.truncate("1d"), rank=pl.col("state").replace_strict(rank))
                 .group_by("account_id", "region", "trail", "hour")
                 .agg(pl.col("rank").min(), pl.col("problems").sum())
                 .with_columns(state=pl.col("rank").replace_strict(dict(enumerate(HOUR_STATES)), return_dtype=pl.String),
                               span=pl.lit("day"))
                 .drop("rank"))
    return cells.sort("trail", "hour")


def cell_details(report: IntegrityReport, account: str, region: str, start: datetime, span: str = "hour") -> pl.DataFrame:
    """The digests and log files of one heatmap cell, with their states and reasons, problems first."""
    end = start + (timedelta(days=1) if span == "day" else timedelta(hours=1))
    rows = pl.concat([report.digests.with_columns(kind=pl.lit("digest")),
                      report.log_files.with_columns(kind=pl.lit("log file"))])
    return (rows.filter((pl.col("account_id") == account) & (pl.col("region") == region)
                        & (pl.col("hour") >= start) & (pl.col("hour") < end))
            .with_columns(verified=pl.col("state") == "verified")
            .sort("verified", "hour", "kind")
            .select("kind", "state", "hour", "key", "reason", "digest_key"))


def query_event_integrity(conn: sqlite3.Connection, event_id: str) -> tuple[str, str]:
    """Whether the log file an event came from is verified (its listing digest's signature and its hash), and why not."""
    found = tables.query_event_file(conn, event_id)
    if found is None:
        return "unknown", "the file this event came from is not recorded"
    key, sha256, trailing = found
    listings = tables.query_listings_of(conn, key)
    if trailing:
        return "trailing data", "its log file has gzip data after the first member: appended content"
    if not listings:
        return "not verified", "no CloudTrail digest lists its log file (log file validation off, or not synced yet)"
    around = tables.query_digests_and_successors(conn, [digest for digest, _ in listings])
    checked = check_digests(around, tables.query_public_keys(conn))
    trusted = checked.filter(pl.col("state") == "verified")["digest_id"].to_list()
    if not any(digest in trusted and value == sha256 for digest, value in listings):
        if any(value != sha256 for _, value in listings):
            return "modified", "its log file's SHA-256 differs from the one its digest lists"
        listing_states = checked.filter(pl.col("digest_id").is_in([d for d, _ in listings]))["state"].to_list()
        return "not verified", "the digest listing its log file is " + (listing_states or ["missing"])[0]
    return "verified", ""


def selected_cell(cells: pl.DataFrame, selected: dict | None) -> dict | None:
    """The heatmap cell a click selected (Vega hands back the hour as epoch milliseconds), or None."""
    if not selected or "trail" not in selected or "hour" not in selected:
        return None
    hour = selected["hour"]
    moment = (datetime.fromtimestamp(hour / 1000, timezone.utc) if isinstance(hour, (int, float))
              else datetime.fromisoformat(str(hour).replace("Z", "+00:00")))
    found = cells.filter((pl.col("trail") == selected["trail"]) & (pl.col("hour") == moment))
    return found.row(0, named=True) if found.height else None


def period_days(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    """The sidebar's period (cache time text) as the days verification takes."""
    return tuple(date.fromisoformat(text[:10]) if text else None for text in (start, end))


def problem_cells(cells: pl.DataFrame, limit: int = 500) -> tuple[pl.DataFrame, list[str]]:
    """The heatmap cells with problems (at most `limit`, worst-looking first in time order) and a label for each."""
    picked = cells.filter(pl.col("problems") > 0).head(limit)
    labels = [f"{row['trail']} {row['hour']:%Y-%m-%d %H:00} ({row['state']}, {row['problems']} problem(s))"
              for row in picked.iter_rows(named=True)]
    return picked, labels
