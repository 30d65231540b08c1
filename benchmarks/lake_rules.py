"""Sigma rules and alert rules on a lake: each rule query (lake.RULE_CASES) and a folder of Sigma rules' findings over
the lake's last 30 days through DuckDB, wall and CPU seconds (target: each page query <= 2 s on a 10M-event lake).

    nice -n 5 python benchmarks/lake_rules.py --lake DIR --rules ../shared/sigma [--first-day 2026-10-01]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import orjson  # noqa: E402

from lake import RULE_CASES  # noqa: E402
from trailstream.analytics import backend, sigma  # noqa: E402
from trailstream.analytics.sigma.evaluation import catalog_rows  # noqa: E402
from trailstream.analytics.sigma.lake import detect_lake_sigma  # noqa: E402
from trailstream.analytics.sigma.settings import SigmaSettings  # noqa: E402
from trailstream.analytics.sigma_queries import LakeRules  # noqa: E402
from trailstream.filters import EventFilter  # noqa: E402


def _timed(label: str, function):
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    print(f"{label}: {time.perf_counter() - wall:.2f} s wall, {time.process_time() - cpu:.2f} s CPU")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="a lake folder written by `compact`")
    parser.add_argument("--rules", required=True, help="a folder of Sigma rules, e.g. ../shared/sigma")
    parser.add_argument("--first-day", help="the period's first day (default: 30 days before the newest partition)")
    args = parser.parse_args()
    duck = backend.duckdb_backend(args.lake)
    first_day = args.first_day or str(duck.run("SELECT CAST(max(date) AS DATE) - 30 AS d FROM events").item())
    period = EventFilter(start=f"{first_day}T00:00:00Z")
    for name, options in RULE_CASES:
        rows = _timed(f"{name} {orjson.dumps(options).decode()[:60]}", lambda: duck.query(name, period, **options))
        print(f"  {rows.height:,} rows")
    catalog = [row | {"enabled": 1, "last_rowid": 0} for row in
               catalog_rows(sigma.load_rules([args.rules]), SigmaSettings()) if row["status"] == "converted"]
    found = _timed(f"{len(catalog)} Sigma rules' findings from {first_day}",
                   lambda: detect_lake_sigma(duck, LakeRules(tuple(map(orjson.dumps, catalog))), period))
    print(f"  {len(found.findings):,} findings, {len(found.skipped)} rules skipped")
    print(f"load average {' '.join(f'{load:.2f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    main()
