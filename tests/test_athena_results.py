"""The local Athena result folder stays bounded: results older than the kept days go, then the oldest until it fits
its size; a new result written by the runner prunes the folder (moto's Athena behind the test front)."""

from __future__ import annotations

import os
from pathlib import Path

from tests.test_athena import SERVICES, _athena_backend, _queue_result, athena_endpoint, aws  # noqa: F401
from trailstream.filters import EventFilter
from trailstream.ingest import athena

NOW = 2_000_000_000.0  # a fixed moment: ages are set relative to it, never read from the clock
DAY = 86_400


def _result_file(folder: Path, name: str, age_days: float, size: int = 100) -> Path:
    path = folder / f"{name}.json"
    path.write_bytes(b"x" * size)
    os.utime(path, (NOW - age_days * DAY, NOW - age_days * DAY))
    return path


def test_results_older_than_the_kept_days_are_dropped(tmp_path):
    _result_file(tmp_path, "stale", 8)
    _result_file(tmp_path, "fresh", 1)
    assert athena.prune_results(tmp_path, now=NOW, days=7) == 1
    assert sorted(path.stem for path in tmp_path.iterdir()) == ["fresh"]


def test_past_the_size_limit_the_oldest_results_go_first(tmp_path):
    for name, age in (("oldest", 3), ("older", 2), ("newer", 1), ("newest", 0)):
        _result_file(tmp_path, name, age, size=400)
    assert athena.prune_results(tmp_path, now=NOW, days=7, max_bytes=1000) == 2
    assert sorted(path.stem for path in tmp_path.iterdir()) == ["newer", "newest"]


def test_only_kept_results_are_touched(tmp_path):
    (tmp_path / "notes.txt").write_text("not a result")
    _result_file(tmp_path, "stale", 30)
    athena.prune_results(tmp_path, now=NOW)
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


def test_a_new_athena_result_prunes_the_folder_as_it_is_kept(aws, tmp_path):  # noqa: F811
    stale = tmp_path / "stale.json"
    stale.write_text("{}")
    os.utime(stale, (0, 0))  # 1970: far older than any kept day
    _queue_result(aws, SERVICES, [["s3.amazonaws.com", "40", "3"]])
    lake, _ = _athena_backend(tmp_path)
    assert lake.query("top_services", EventFilter(start="2026-03-01T00:00:00Z")).height == 1
    assert not stale.exists() and len(list(tmp_path.glob("*.json"))) == 1
