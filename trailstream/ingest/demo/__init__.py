"""Demo data: a month of CloudTrail activity for a small fictional company, with planted security findings.

The app opens on it when nothing is configured, `python -m trailstream demo` imports it, the benchmarks generate a
million events with it, and the detection tests check their findings against PLANTED. The company (three accounts,
its people, roles and networks) is fixed; the seed changes only the background, and the planted events are the same
records for every seed (same eventIDs, placed relative to `end`). Records share constant sub-objects (identities,
tlsDetails, empty filter sets) to stay fast: copy one (copy.deepcopy) before editing it.

The package follows the generator's parts: company (who and where), identities and builder (how a record is made),
shapes (EC2 and IAM records), planted (findings and look-alikes), actors and background (everyday activity),
scenarios (use cases), errors (failed calls) and delivery (log files as CloudTrail writes them).
"""

from __future__ import annotations

import random
from bisect import insort
from datetime import datetime, timezone

from trailstream.catalog import PRIVILEGE_CHANGE_EVENTS, UNAUTHORIZED_ERROR_CODES
from trailstream.ingest import collector
from trailstream.ingest.demo.background import _data_sync, _human_background, _machine_background
from trailstream.ingest.demo.builder import _Builder
from trailstream.ingest.demo.company import (
    ACCOUNT_REGIONS, ACCOUNTS, BUCKETS, DAY, DEMO_SEED, GLOBAL_REGION, HOSTILE_STRINGS, HOUR, MINUTE, NETWORKS, PEOPLE,
    PROD, REGIONS, SECURITY, STAGING, TRAVEL_IPS, Network, Person,
)
from trailstream.ingest.demo.delivery import iter_log_files, write_log_files
from trailstream.ingest.demo.errors import _PLANTED_SIGN_IN_FAILURES, _errors
from trailstream.ingest.demo.identities import _epoch
from trailstream.ingest.demo.planted import _plant
from trailstream.ingest.demo.scenarios import (
    _elastic_ips, _iam_changes, _instance_lifecycles, _networks, _Scenarios, _security_groups,
)
from trailstream.ingest.records import principal_name

__all__ = [
    "ACCOUNTS", "ACCOUNT_REGIONS", "BUCKETS", "DAY", "DEMO_SEED", "GLOBAL_REGION", "HOSTILE_STRINGS", "HOUR", "MINUTE",
    "NETWORKS", "PEOPLE", "PLANTED", "PROD", "REGIONS", "SECURITY", "STAGING", "TRAVEL_IPS", "Network", "Person",
    "generate_records", "iter_log_files", "write_log_files",
]


def _end_moment(end: datetime | None) -> int:
    if end is None:
        end = datetime.now(timezone.utc)
    if end.tzinfo is None:
        end = end.replace(tzinfo=timezone.utc)
    return int(end.timestamp()) // 60 * 60


def generate_records(events: int = 20_000, seed: int = DEMO_SEED, end: datetime | None = None,
                     days: int = 30, planted: bool = True) -> list[dict]:
    """`events` CloudTrail records (exactly, beyond the ~300 the planted cases and smallest scenarios need) over the
    `days` days before `end` (default: now, to the minute), sorted by eventTime. The same arguments give the same
    records; PLANTED's cases always lie in the last 7 days (`planted=False` leaves them out, for extra slices)."""
    with collector.paused():  # a million small dicts make the cycle collector rescan the heap for nothing
        return _generate(events, seed, _end_moment(end), days, planted)


def _generate(events: int, seed: int, stop: int, days: int, planted: bool) -> list[dict]:
    b = _Builder(random.Random(seed), stop - days * DAY, stop)
    if planted:
        _plant(b, stop)
    for record in b.out:  # the background's spacing rules count the planted events too
        refused = record.get("errorCode") in UNAUTHORIZED_ERROR_CODES
        if refused or record["eventName"] in PRIVILEGE_CHANGE_EVENTS:
            taken = b.busy(principal_name(record["userIdentity"]) or "", "refused" if refused else "privilege")
            insort(taken, _epoch(record["eventTime"]))
    sc = _Scenarios(b)
    scale = max(events, 1)
    _instance_lifecycles(sc, _clamp(scale // 500, 6, 2500))
    _elastic_ips(sc, _clamp(scale // 2500, 4, 400))
    _security_groups(sc, _clamp(scale // 4000, 4, 300))
    _networks(sc, _clamp(scale // 40_000, 2, 40))
    _iam_changes(sc, _clamp(scale // 5000, 6, 250))
    _errors(b, _clamp(scale // 80, 30, 20_000))
    remaining = events - len(b.out)
    if remaining > 0:
        _human_background(b, int(remaining * 0.32), no_failures=_PLANTED_SIGN_IN_FAILURES)
        _machine_background(b, events - len(b.out))
    if len(b.out) < events:  # sessions that found no free slot: the Lambda ran a little more
        _data_sync(b, events - len(b.out), b.rng)
    records = b.out
    records.sort(key=_event_time)
    return records


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _event_time(record: dict) -> str:
    return record["eventTime"]


# Planted cases per finding type (plus "rare_error", "instance_terminated", "elastic_ip_released", "hostile_content"):
# principal, expected (False: a look-alike that must not be flagged), event_ids, seconds_before_end (one per event),
# account, and details such as countries, ips, port, cidr, note. The same for every seed and end.
PLANTED: dict[str, list[dict]] = _plant(_Builder(random.Random(0), 0, 30 * DAY), 30 * DAY)

