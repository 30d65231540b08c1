"""The Parquet lake: the compactor's partitions, idempotence, late events, merged files, and refusals."""

from __future__ import annotations

import gzip
import json
import shutil
from datetime import date, timedelta
from pathlib import Path
from string import Template

import duckdb
import sqlglot

from trailstream import cli
from trailstream.config import BackendSettings
from trailstream.ingest import lake, lake_ddl


def _record(event_id: str, when: str, region: str = "eu-west-1", account: str = "111122223333") -> dict:
    return {"eventID": event_id, "eventName": "GetObject", "eventTime": when, "eventSource": "s3.amazonaws.com",
            "awsRegion": region, "recipientAccountId": account, "userIdentity": {"type": "IAMUser", "userName": "ann"}}


def _log(path: Path, *records: dict) -> Path:
    path.write_bytes(gzip.compress(json.dumps({"Records": list(records)}).encode()))
    return path


def _parquet_files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*.parquet"))


def _lake_ids(folder: Path) -> list[str]:
    sql = f"SELECT event_id FROM read_parquet('{folder}/**/*.parquet', hive_partitioning = true) ORDER BY 1"
    return [row[0] for row in duckdb.sql(sql).fetchall()]


def test_corpus_compacts_to_each_distinct_event_once_and_rerunning_adds_nothing(corpus, tmp_path):
    expected = json.loads((corpus / "expected.json").read_text())["events_total"]
    first = lake.compact_paths(tmp_path, [corpus / "events"])
    files = _parquet_files(tmp_path)
    again = lake.compact_paths(tmp_path, [corpus / "events-gz"])
    assert not first.failures and first.new_events == len(_lake_ids(tmp_path)) == expected["distinct_events"]
    assert again.new_events == 0 and again.partitions_written == 0
    assert _parquet_files(tmp_path) == files


def test_partitions_follow_the_event_day_not_the_delivery_and_small_files_merge(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    _log(logs / "a.json.gz", _record("e1", "2026-03-01T23:59:59Z"), _record("late", "2026-02-27T10:00:00Z"))
    lake.compact_paths(tmp_path / "lake", [logs / "a.json.gz"])
    _log(logs / "b.json.gz", _record("e2", "2026-03-01T08:00:00Z"))
    lake.compact_paths(tmp_path / "lake", [logs / "b.json.gz"])
    files = _parquet_files(tmp_path / "lake")
    assert [Path(f).parent.as_posix() for f in files] == [
        "account=111122223333/region=eu-west-1/date=2026-02-27",
        "account=111122223333/region=eu-west-1/date=2026-03-01",
    ]
    assert _lake_ids(tmp_path / "lake") == ["e1", "e2", "late"]


def test_hostile_region_and_account_never_become_folders(tmp_path):
    _log(tmp_path / "x.json", _record("h", "2026-03-01T00:00:00Z", region="../../etc", account="a/../b"))
    lake.compact_paths(tmp_path / "lake", [tmp_path / "x.json"])
    assert _parquet_files(tmp_path / "lake") == [
        f for f in _parquet_files(tmp_path / "lake") if f.startswith("account=unknown/region=unknown/date=2026-03-01/")
    ] != []


def test_a_broken_file_is_reported_and_does_not_block_the_others(tmp_path):
    (tmp_path / "bad.json.gz").write_bytes(b"\x1f\x8bnot gzip")
    _log(tmp_path / "good.json.gz", _record("g", "2026-03-01T00:00:00Z"))
    result = lake.compact_paths(tmp_path / "lake", [tmp_path / "bad.json.gz", tmp_path / "good.json.gz"])
    assert [name for name, _ in result.failures] == [str(tmp_path / "bad.json.gz")]
    assert "gzip" in result.failures[0][1]
    assert _lake_ids(tmp_path / "lake") == ["g"]


def test_flat_columns_hold_epoch_millis_hour_and_lineage(tmp_path):
    source = _log(tmp_path / "a.json.gz", _record("e1", "2026-03-01T01:30:00Z"))
    lake.compact_paths(tmp_path / "lake", [source])
    row = duckdb.sql(f"SELECT event_time_ms, event_hour, source_key, length(source_sha256), account "
                     f"FROM read_parquet('{tmp_path}/lake/**/*.parquet', hive_partitioning = true, "
                     "hive_types_autocast = false)").fetchall()[0]
    assert row == (1772328600000, 1772328600000 // 3_600_000, str(source.resolve()), 64, "111122223333")


def test_cli_compact_says_what_it_wrote_and_refuses_a_bad_location(tmp_path, capsys):
    _log(tmp_path / "a.json.gz", _record("e1", "2026-03-01T01:30:00Z"))
    assert cli.main(["compact", "--to", str(tmp_path / "lake"), str(tmp_path / "a.json.gz")]) == 0
    assert "1 new" in capsys.readouterr().out
    assert cli.main(["compact", "--to", "ftp://x/y", str(tmp_path / "a.json.gz")]) == 2
    assert "s3://BUCKET/PREFIX or a folder" in capsys.readouterr().err


def _lake_settings(tmp_path, lake_location: str) -> Path:
    path = tmp_path / "trailstream.toml"
    path.write_text(f'[backend]\nkind = "athena"\nlake = "{lake_location}"\n'
                    'trail = "s3://trail/AWSLogs/111122223333/CloudTrail"\n')
    return path


def _properties(statement) -> dict[str, str]:
    return {p.name: p.text("value") for p in statement.find_all(sqlglot.exp.Property) if p.name}


def test_the_projection_template_over_a_date_range_hits_exactly_the_compactors_partitions(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    days = [f"2026-02-{day:02d}" for day in range(25, 29)] + ["2026-03-01", "2026-03-02"]
    _log(logs / "a.json", *[_record(f"e{n}", f"{day}T12:00:00Z", region=("eu-west-1", "us-east-1")[n % 2])
                            for n, day in enumerate(days)])
    lake.compact_paths(tmp_path / "lake", [logs])
    settings = BackendSettings(lake="s3://bucket/lake")
    accounts, regions, first = lake_ddl.list_lake_partitions(str(tmp_path / "lake"))
    props = _properties(sqlglot.parse_one(lake_ddl.lake_table_ddl(settings, accounts, regions, first), read="athena"))
    assert props["projection.date.range"] == "2026-02-25,NOW"
    template = props["storage.location.template"].replace("s3://bucket/lake", str(tmp_path / "lake"))
    expanded = {
        Template(template).substitute(account=a, region=r, date=(date(2026, 2, 25) + timedelta(d)).isoformat())
        for a in props["projection.account.values"].split(",")
        for r in props["projection.region.values"].split(",") for d in range(6)
    }
    written = {str(p.parent) for p in (tmp_path / "lake").rglob("*.parquet")}
    assert written <= expanded and {p for p in expanded if Path(p).exists()} == written


def test_athena_ddl_prints_statements_that_parse_back(tmp_path, corpus, capsys):
    lake.compact_paths(tmp_path / "lake", [corpus / "events"])
    config = _lake_settings(tmp_path, str(tmp_path / "empty"))
    settings = BackendSettings(lake=str(tmp_path / "lake"), trail="s3://trail/AWSLogs/111122223333/CloudTrail")
    statements = lake_ddl.athena_statements(settings)
    parsed = [sqlglot.parse_one(s, read="athena") for s in statements]
    assert [type(p).__name__ for p in parsed] == ["Create"] * 4
    raw = _properties(parsed[2])
    assert raw["storage.location.template"].endswith("/CloudTrail/${region}/${date}")
    assert "unknown" not in raw["projection.region.values"] and " " not in raw["projection.region.values"]
    assert "CloudTrailInputFormat" in statements[2] and "JsonSerDe" in statements[2]
    assert cli.main(["--config", str(config), "athena-ddl"]) == 2
    assert "holds no partitions yet" in capsys.readouterr().err


def test_compacting_to_s3_writes_only_parquet_objects_and_rerunning_adds_nothing(aws, corpus):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lake")
    first = lake.compact_paths("s3://lake/ct", [corpus / "events"], workers=1)
    again = lake.compact_paths("s3://lake/ct", [corpus / "events-gz"], workers=1)
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket="lake", Prefix="ct/")["Contents"]]
    assert first.new_events > 0 and again.new_events == 0
    assert len(keys) == first.partitions_written and all(key.endswith(".parquet") for key in keys)
    accounts, regions, first_day = lake_ddl.list_lake_partitions("s3://lake/ct")
    assert "123456789012" in accounts and "us-east-1" in regions and first_day == min(
        key.split("date=")[1][:10] for key in keys)


def test_a_partition_left_with_a_duplicate_file_is_healed_by_the_next_merge(tmp_path):
    _log(tmp_path / "a.json", _record("e1", "2026-03-01T01:00:00Z"))
    lake.compact_paths(tmp_path / "lake", [tmp_path / "a.json"])
    (written,) = (tmp_path / "lake").rglob("*.parquet")
    shutil.copy(written, written.with_name("part-leftover.parquet"))  # as an interrupted run would leave it
    _log(tmp_path / "b.json", _record("e2", "2026-03-01T02:00:00Z"))
    lake.compact_paths(tmp_path / "lake", [tmp_path / "b.json"])
    assert len(_parquet_files(tmp_path / "lake")) == 1 and _lake_ids(tmp_path / "lake") == ["e1", "e2"]


def test_compact_reads_a_trail_bucket_from_a_day_on_into_the_lake(aws, tmp_path, capsys):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="trail")
    prefix = "AWSLogs/111122223333/CloudTrail/eu-west-1"
    for day, event_id in ((1, "old"), (2, "kept"), (3, "also")):
        late = _record(f"late{day}", "2026-02-20T10:00:00Z")  # delivered days after it happened: never dropped
        records = [_record(event_id, f"2026-03-0{day}T10:00:00Z"), late]
        body = gzip.compress(json.dumps({"Records": records}).encode())
        s3.put_object(Bucket="trail", Key=f"{prefix}/2026/03/0{day}/111122223333_CloudTrail_eu-west-1_{day}.json.gz",
                      Body=body)
    s3.put_object(Bucket="trail", Key=f"{prefix}/2026/03/03/broken.json.gz", Body=b"\x1f\x8bbroken")
    assert cli.main(["compact", "--to", str(tmp_path / "lake"), "--since", "2026-03-02", "s3://trail"]) == 1
    out, err = capsys.readouterr()
    assert "4 new" in out and "broken.json.gz: corrupt gzip data" in err
    assert _lake_ids(tmp_path / "lake") == ["also", "kept", "late2", "late3"]
    assert cli.main(["compact", "--to", str(tmp_path / "lake"), "s3://trail"]) == 2
    assert "needs --since" in capsys.readouterr().err


def test_compact_without_paths_reads_the_configured_sources(tmp_path, capsys):
    logs = tmp_path / "logs"
    logs.mkdir()
    _log(logs / "a.json.gz", _record("from-source", "2026-03-01T01:30:00Z"))
    config = tmp_path / "trailstream.toml"
    config.write_text('[[sources]]\nkind = "local"\nname = "folder"\npath = "logs"\n')
    assert cli.main(["--config", str(config), "compact", "--to", str(tmp_path / "lake")]) == 0
    assert _lake_ids(tmp_path / "lake") == ["from-source"]
    config.write_text("")
    assert cli.main(["--config", str(config), "compact", "--to", str(tmp_path / "lake")]) == 2
    assert "no PATH given and no local or S3 source configured" in capsys.readouterr().err


# --- watch --compact-to: each round writes what its syncs brought ---------------------------------


def _lake_rows(folder: Path) -> list[tuple]:
    """The lake's events without lineage, in one order: what two ways of filling a lake must agree on."""
    columns = ", ".join(lake.FLAT_COLUMNS + ("event_time_ms", "event_hour", "account", "region", "date"))
    sql = (f"SELECT {columns} FROM read_parquet('{folder}/**/*.parquet', hive_partitioning = true, "
           "hive_types_autocast = false) ORDER BY event_id")
    return duckdb.sql(sql).fetchall()


def test_watch_compact_to_writes_each_synced_event_to_the_lake_once(tmp_path):
    from datetime import timedelta

    from trailstream import config, jobs

    logs, direct = tmp_path / "logs", tmp_path / "direct-lake"
    logs.mkdir()
    _log(logs / "a.json.gz", _record("e1", "2026-03-01T10:00:00Z"), _record("e2", "2026-02-27T10:00:00Z", "us-east-1"))
    (tmp_path / "trailstream.toml").write_text(f'[[sources]]\nname = "logs"\nkind = "local"\npath = "{logs}"\n')
    settings, lines = config.load_settings(tmp_path / "trailstream.toml"), []
    db = tmp_path / "cache.db"
    jobs.watch(db, settings, timedelta(0), iterations=2, report=lines.append, compact_to=str(tmp_path / "lake"))
    compacted = [line for line in lines if line.startswith("compact:")]
    assert compacted[0].startswith("compact: 1 file(s), 2 event(s), 2 new") and ", 0 new," in compacted[1]
    _log(logs / "b.json.gz", _record("e3", "2026-03-01T11:00:00Z"), _record("e1", "2026-03-01T10:00:00Z"))
    later = []
    jobs.watch(db, settings, timedelta(0), iterations=1, report=later.append, compact_to=str(tmp_path / "lake"))
    [round_three] = [line for line in later if line.startswith("compact:")]
    assert round_three.startswith("compact: 1 file(s), 1 event(s), 1 new")  # only e3: e1 was stored before
    lake.compact_paths(direct, [logs])
    assert _lake_rows(tmp_path / "lake") == _lake_rows(direct) and len(_lake_rows(direct)) == 3


def test_watch_compact_to_a_location_that_is_not_a_lake_stops_with_a_sentence(tmp_path, capsys):
    (tmp_path / "trailstream.toml").write_text("")
    code = cli.main(["--config", str(tmp_path / "trailstream.toml"), "--db", str(tmp_path / "cache.db"), "watch",
                     "--compact-to", "ftp://example/lake"])
    assert code == 2
    assert "the lake must be s3://BUCKET/PREFIX or a folder, not ftp://example/lake" in capsys.readouterr().err
