"""The settings file: sources in, sources out, the user's comments and other sections kept, problems as sentences."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from trailstream import cli, config, jobs

SETTINGS_WITH_COMMENTS = """\
# TrailStream settings for the security team
db = "cache/trailstream.db"  # next to this file

[[sources]]
# production trail, via S3 notifications
name = "prod"
kind = "sqs"
queue = "ct-logs"  # queue name, not URL
buckets = ["org-trail"]
region = "eu-west-1"

[[sources]]
name = "archive"
kind = "local"
path = "logs"

[smtp]
# the relay on the jump host
host = "mail.internal"
port = 25

[alerts]
enabled = true
"""


@pytest.fixture
def settings_file(tmp_path) -> Path:
    path = tmp_path / "trailstream.toml"
    path.write_text(SETTINGS_WITH_COMMENTS)
    return path


def test_a_missing_file_means_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAILSTREAM_DB", raising=False)
    settings = config.load_settings(tmp_path / "absent.toml")
    assert settings.sources == [] and settings.errors == []
    assert settings.db_path() == "trailstream.db"


def test_the_settings_path_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TRAILSTREAM_CONFIG", str(tmp_path / "elsewhere.toml"))
    assert config.load_settings().path == tmp_path / "elsewhere.toml"


def test_sources_are_read_with_their_kinds(settings_file, monkeypatch):
    monkeypatch.delenv("TRAILSTREAM_DB", raising=False)
    settings = config.load_settings(settings_file)
    assert settings.errors == []
    assert settings.sources == [
        config.SqsSource(name="prod", queue="ct-logs", buckets=["org-trail"], region="eu-west-1"),
        config.LocalSource(name="archive", path="logs"),
    ]
    assert settings.db_path() == str(settings_file.parent / "cache" / "trailstream.db")
    assert settings.section("smtp") == {"host": "mail.internal", "port": 25}


def test_trailstream_db_overrides_the_file(settings_file, monkeypatch):
    monkeypatch.setenv("TRAILSTREAM_DB", "/tmp/other.db")
    assert config.load_settings(settings_file).db_path() == "/tmp/other.db"


def test_saving_keeps_comments_and_sections_it_does_not_know(settings_file):
    settings = config.load_settings(settings_file)
    settings.sources[0].buckets.append("second-trail")
    settings.sources = [settings.sources[0], config.S3Source(name="backfill", bucket="org-trail", since="2026-01-01")]
    config.save_settings(settings)

    text = settings_file.read_text()
    for kept in ("# TrailStream settings for the security team", "# next to this file",
                 "# production trail, via S3 notifications", "# queue name, not URL", "# the relay on the jump host",
                 "[alerts]"):
        assert kept in text
    assert 'name = "archive"' not in text
    again = config.load_settings(settings_file)
    assert again.errors == []
    assert again.sources[0].buckets == ["org-trail", "second-trail"]
    assert again.sources[1] == config.S3Source(name="backfill", bucket="org-trail", since="2026-01-01")
    assert again.section("smtp")["host"] == "mail.internal"


def test_other_modules_can_replace_their_section(settings_file):
    settings = config.load_settings(settings_file)
    settings.set_section("detections", {"unauthorized_burst": {"threshold": 20}})
    settings.set_section("smtp", {"host": "relay.example", "port": 25})
    config.save_settings(settings)
    again = config.load_settings(settings_file)
    assert again.detections == {"unauthorized_burst": {"threshold": 20}}
    assert again.section("smtp") == {"host": "relay.example", "port": 25}
    assert "# the relay on the jump host" in settings_file.read_text()


def test_malformed_toml_is_a_sentence_not_a_traceback(tmp_path):
    path = tmp_path / "trailstream.toml"
    path.write_text('db = "unterminated\n[[sources]]\n')
    settings = config.load_settings(path)
    assert len(settings.errors) == 1
    assert "not valid TOML" in settings.errors[0] and "line 1" in settings.errors[0]
    with pytest.raises(config.SettingsError):
        config.save_settings(settings)
    with pytest.raises(config.SettingsError):
        settings.section("access")  # a broken file is trusted for nothing


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('kind = "ftp"\nname = "x"', "kind = 'ftp'"),
        ('kind = "sqs"\nname = "q"', 'needs "queue"'),
        ('kind = "s3"\nname = "b"', 'needs "bucket"'),
        ('kind = "local"\nname = "l"', 'needs "path"'),
        ('kind = "sqs"\nname = "q"\nqueue = "x"\nregion = "Ireland"', "does not look like an AWS region"),
        ('kind = "sqs"\nname = "q"\nqueue = "x"\nrole_arn = "admin"', "should look like arn:aws:iam::"),
        ('kind = "sqs"\nname = "q"\nqueue = "x"\nbuckets = "one"', '"buckets" must be a list'),
        ('kind = "sqs"\nname = "q"\nqueue = "x"\naws_secret_access_key = "abc"', "never write credentials here"),
        ('kind = "s3"\nname = "b"\nbucket = "x"\nsince = "yesterday"', "write it as YYYY-MM-DD"),
        ('kind = "s3"\nname = "b"\nbucket = "x"\nsince = "2026-02-01"\nuntil = "2026-01-01"', "swap them"),
        ('kind = "s3"\nname = "b"\nbucket = "x"\naccounts = ["42"]', "should be 12 digits"),
        ('kind = "local"\nname = "l"\npath = "x"\ncolour = "red"', 'unknown setting "colour"'),
    ],
)
def test_bad_values_are_explained(tmp_path, source, expected):
    path = tmp_path / "trailstream.toml"
    path.write_text(f"[[sources]]\n{source}\n")
    settings = config.load_settings(path)
    assert settings.sources == []
    assert any(expected in error for error in settings.errors), settings.errors


def test_two_sources_with_one_name_are_refused(tmp_path):
    path = tmp_path / "trailstream.toml"
    path.write_text('[[sources]]\nname = "a"\nkind = "local"\npath = "x"\n[[sources]]\nname = "a"\nkind = "local"\n'
                    'path = "y"\n')
    assert any('two sources are named "a"' in error for error in config.load_settings(path).errors)


def test_no_secret_reaches_the_file(tmp_path):
    settings = config.load_settings(tmp_path / "trailstream.toml")
    settings.sources.append(config.SqsSource(name="q", queue="ct", profile="security-audit"))
    config.save_settings(settings)
    text = (tmp_path / "trailstream.toml").read_text()
    assert 'profile = "security-audit"' in text
    assert "secret" not in text and "aws_access_key_id" not in text


def _local_settings(tmp_path, folder: Path) -> config.Settings:
    settings = config.load_settings(tmp_path / "trailstream.toml")
    settings.sources = [config.LocalSource(name="exported", path=str(folder)),
                        config.LocalSource(name="gone", path=str(tmp_path / "missing"))]
    config.save_settings(settings)
    return config.load_settings(tmp_path / "trailstream.toml")


def test_run_configured_sync_reads_every_source_and_reports_each(tmp_path, corpus, db_path):
    settings = _local_settings(tmp_path, corpus / "events")
    results = jobs.run_configured_sync(settings, db_path)
    assert [result.source for result in results] == ["exported", "gone"]
    stored = sqlite3.connect(db_path).execute("SELECT count(*) FROM events").fetchone()[0]
    assert results[0].new_events == stored > 0
    assert results[1].failures and "no such file or folder" in results[1].failures[0][1]


def test_cli_sync_without_arguments_syncs_the_configured_sources(tmp_path, corpus, db_path):
    _local_settings(tmp_path, corpus / "events")
    code = cli.main(["--db", str(db_path), "--config", str(tmp_path / "trailstream.toml"), "--quiet", "sync"])
    assert code == cli.EXIT_FAILED  # the missing folder is a failure...
    assert sqlite3.connect(db_path).execute("SELECT count(*) FROM events").fetchone()[0] > 0  # ...the rest is stored


def test_a_demo_cache_is_replaced_when_real_sources_sync(tmp_path, corpus, db_path):
    from trailstream.ingest import sync

    sync.import_demo(db_path, events=300, seed=1, workers=1)
    assert jobs.holds_only_demo_data(db_path)
    settings = _local_settings(tmp_path, corpus / "events")
    jobs.run_configured_sync(settings, db_path)
    sources = {row[0] for row in sqlite3.connect(db_path).execute("SELECT DISTINCT source FROM files")}
    assert sources == {"local"}


def test_leaving_the_demo_keeps_what_the_user_made_and_alerts_start_over(tmp_path, db_path):
    from trailstream.notify import alerts, saved
    from trailstream.cache import audit, store
    from trailstream.ingest import demo, sync

    sync.import_demo(db_path, events=600, seed=1, workers=1)
    alerts.run_alerts(db_path, {})  # fires on demo events and moves every rule's watermark past them
    saved.save_search(db_path, saved.SavedSearch("mine", "sql", sql="SELECT count(*) FROM events"))
    audit.record_audit(db_path, "me@example.com", "setting_changed", "tried the demo")
    real = tmp_path / "real"
    demo.write_log_files(real, demo.generate_records(events=600, seed=5))
    settings = config.load_settings(tmp_path / "trailstream.toml")
    settings.sources = [config.LocalSource(name="real", path=str(real))]

    jobs.run_configured_sync(settings, db_path)

    conn = store.open_cache_readonly(db_path)
    assert {row[0] for row in conn.execute("SELECT DISTINCT source FROM files")} == {"local"}
    assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 600
    assert [s.name for s in saved.query_saved_searches(conn)] == ["mine"]
    assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 1
    assert alerts.run_alerts(db_path, {}).fired > 0  # the real events are new to every rule


def test_loading_reads_the_file_without_building_the_editable_document(tmp_path):
    """tomlkit needs seconds for a file of many dotted keys (found by fuzzing): loading, which every page and command
    does, reads with tomllib; the tomlkit document is built only to save an edit."""
    path = tmp_path / "trailstream.toml"
    path.write_text("# kept\n[extra]\n" + "".join(f"group{n}.key = {n}\n" for n in range(300)), encoding="utf-8")

    settings = config.load_settings(path)

    assert settings.errors == [] and settings._document is None
    assert settings.section("extra")["group299"] == {"key": 299}
    settings.set_section("detections", {"burst_threshold": 7})
    config.save_settings(settings)
    saved = path.read_text(encoding="utf-8")
    assert saved.startswith("# kept\n") and "group299.key = 299" in saved
    assert config.load_settings(path).section("detections") == {"burst_threshold": 7}
