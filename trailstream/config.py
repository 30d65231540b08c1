"""The settings file (trailstream.toml) shared by the app and the CLI: the cache path and the configured sources.

Reading goes through the standard library's tomllib (linear time, whatever the file holds); saving goes through
tomlkit and edits the file's document in place, so the user's comments and any section this module does not know
([detections], [smtp], [alerts], ...) survive a save from the app.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from dataclasses import MISSING, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, ClassVar

import tomlkit

DEFAULT_CONFIG = "trailstream.toml"
DEFAULT_DB = "trailstream.db"

SOURCE_KINDS = {"sqs": "SQS queue", "s3": "S3 backfill", "local": "Local folder", "lookup": "Event history (no trail)"}
# Keys that would hold a secret: refused, because credentials come from the AWS credential chain.
SECRET_KEYS = {"aws_access_key_id", "aws_secret_access_key", "aws_session_token", "secret_access_key",
               "access_key_id", "session_token", "secret", "password"}
REGION_PATTERN = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")
ROLE_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")
ACCOUNT_PATTERN = re.compile(r"^\d{12}$")


class SettingsError(ValueError):
    """The settings file has problems (listed in `problems`), so it cannot be saved or trusted for any section."""

    def __init__(self, path: str | os.PathLike, problems: list[str]):
        self.problems = list(problems)
        super().__init__(f"{os.fspath(path)} has problems to fix first: " + "; ".join(self.problems))


@dataclass(frozen=True)
class AwsAccess:
    """How TrailStream reaches AWS: a profile (else the default credential chain), a region, a role to assume."""

    profile: str = ""
    region: str = ""
    role_arn: str = ""
    external_id: str = ""

    def problems(self) -> list[str]:
        """What is wrong with these values, as sentences."""
        problems = []
        if self.region and not REGION_PATTERN.match(self.region):
            problems.append(f'region "{self.region}" does not look like an AWS region (e.g. eu-west-1)')
        if self.role_arn and not ROLE_ARN_PATTERN.match(self.role_arn):
            problems.append(f'role ARN "{self.role_arn}" should look like arn:aws:iam::123456789012:role/Name')
        return problems


@dataclass(kw_only=True)
class AwsSourceSettings:
    """The settings keys of every source read from AWS: region, profile, role_arn, external_id."""

    region: str = ""
    profile: str = ""
    role_arn: str = ""
    external_id: str = ""

    @property
    def access(self) -> AwsAccess:
        return AwsAccess(self.profile, self.region, self.role_arn, self.external_id)


@dataclass
class SqsSource(AwsSourceSettings):
    """CloudTrail's S3 notifications arriving on an SQS queue; the trail buckets are read with the same credentials."""

    kind: ClassVar[str] = "sqs"
    name: str
    queue: str
    buckets: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return f"SQS {self.queue}" + (f" ({self.region})" if self.region else "")


@dataclass
class S3Source(AwsSourceSettings):
    """A one-off or repeated read of a trail bucket between two dates."""

    kind: ClassVar[str] = "s3"
    name: str
    bucket: str
    prefix: str = ""
    since: str = ""
    until: str = ""
    accounts: list[str] = field(default_factory=list)
    regions: list[str] = field(default_factory=list)

    def describe(self) -> str:
        span = f", {self.since or 'start'} to {self.until or 'today'}"
        return f"S3 s3://{self.bucket}/{self.prefix}{span}"


@dataclass
class LocalSource:
    """A folder (or file) of CloudTrail log files, .json or .json.gz."""

    kind: ClassVar[str] = "local"
    name: str
    path: str

    def describe(self) -> str:
        return f"Local folder {self.path}"


@dataclass
class LookupSource(AwsSourceSettings):
    """Event history read with LookupEvents: 90 days of management and Insights events with no trail, kept up to date."""

    kind: ClassVar[str] = "lookup"
    name: str
    regions: list[str] = field(default_factory=list)
    since: str = ""

    def describe(self) -> str:
        return "Event history (LookupEvents) in " + (", ".join(self.regions) if self.regions else "every enabled region")


@dataclass(kw_only=True)
class BackendSettings(AwsSourceSettings):
    """[backend]: where pages read events. kind "cache" (the SQLite file) or "athena" (the Parquet lake)."""

    kind: str = "cache"
    lake: str = ""  # s3://BUCKET/PREFIX (or a folder, read with DuckDB) the compactor writes
    trail: str = ""  # s3://BUCKET/PREFIX/AWSLogs/ACCOUNT/CloudTrail/ of the raw JSON, for the raw table
    workgroup: str = "primary"
    database: str = "trailstream"
    table: str = "events"
    output_location: str = ""  # s3://... where Athena writes results (unless the workgroup says)

    @classmethod
    def from_section(cls, values: dict) -> "BackendSettings":
        """The [backend] section; keys this version does not know are left out."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: str(value) for key, value in values.items() if key in known})

    def problems(self) -> list[str]:
        """What is wrong with these values, as sentences."""
        problems = [] if self.kind in ("cache", "athena") else [f'[backend] kind "{self.kind}" is not cache or athena']
        for name in ("trail", "output_location"):
            value = getattr(self, name)
            if value and not value.startswith("s3://"):
                problems.append(f'[backend] {name} "{value}" should be an s3://BUCKET/PREFIX location')
        return problems + self.access.problems()


Source = SqsSource | S3Source | LocalSource | LookupSource
SOURCE_CLASSES: dict[str, type] = {cls.kind: cls for cls in (SqsSource, S3Source, LocalSource, LookupSource)}


@dataclass
class Settings:
    """What the settings file says, and `errors` (sentences) when it cannot be used as written.

    `values` is what the file says; `text` is kept so a save edits the file's own document (comments and every
    section this module does not know are preserved).
    """

    path: Path
    db: str = ""
    sources: list[Source] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    values: dict = field(default_factory=dict, repr=False)
    text: str = field(default="", repr=False)
    _document: tomlkit.TOMLDocument | None = field(default=None, repr=False)

    @property
    def document(self) -> tomlkit.TOMLDocument:
        """The file as tomlkit's editable document, parsed only when editing: tomlkit takes seconds on a file of many
        dotted keys (found by fuzzing), so loading never waits for it."""
        if self._document is None:
            self._document = tomlkit.parse(self.text) if self.text else tomlkit.document()
        return self._document

    @property
    def detections(self) -> dict:
        return self.section("detections")

    def db_path(self) -> str:
        """The cache to use: TRAILSTREAM_DB, else `db` from the file (relative to the file), else ./trailstream.db."""
        if os.environ.get("TRAILSTREAM_DB"):
            return os.environ["TRAILSTREAM_DB"]
        if self.db:
            return os.fspath(self.resolve(self.db))
        return DEFAULT_DB

    def resolve(self, path: str) -> Path:
        """A path written in the file, read relative to the file's folder."""
        candidate = Path(path).expanduser()
        return candidate if candidate.is_absolute() else self.path.parent / candidate

    def section(self, name: str) -> dict:
        """A plain copy of a section other modules own ([detections], [smtp], [alerts]); {} when absent.

        Raises SettingsError when the file had problems: a broken file is trusted for nothing (access fails closed).
        """
        if self.errors:
            raise SettingsError(self.path, self.errors)
        value = self.values.get(name)
        return copy.deepcopy(value) if isinstance(value, dict) else {}

    def set_section(self, name: str, values: dict) -> None:
        """Replace a section's keys in place (comments on keys that stay are kept) before save_settings."""
        table = self.document.get(name)
        if table is None:
            self.document[name] = tomlkit.table()
            table = self.document[name]
        for key in [key for key in table if key not in values]:
            del table[key]
        for key, value in values.items():
            if key not in table or table[key] != value:
                table[key] = value
        self.values[name] = copy.deepcopy(values)

    def source(self, name: str) -> Source | None:
        return next((source for source in self.sources if source.name == name), None)


def config_path(path: str | os.PathLike | None = None) -> Path:
    """The settings file: the given path, else TRAILSTREAM_CONFIG, else ./trailstream.toml."""
    return Path(path or os.environ.get("TRAILSTREAM_CONFIG") or DEFAULT_CONFIG)


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and check the settings file; a missing file means defaults. Problems come back in `errors`, never raised."""
    path = config_path(path)
    if not path.exists():
        return Settings(path=path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        return Settings(path=path, errors=[f"cannot read {path} ({reason}); check the file and its permissions"])
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # a syntax error, and a key written twice
        return Settings(path=path, errors=[
            f"{path} is not valid TOML: {exc}; fix that line (or move the file away to start afresh)"
        ])
    except RecursionError:  # a key of hundreds of dotted parts, nested that deep (found by fuzzing)
        return Settings(path=path, errors=[f"{path} has a key with too many dotted parts to read; shorten it"])
    problems: list[str] = []
    db = document.get("db", "")
    if not isinstance(db, str):
        problems.append('"db" must be a text path, like db = "trailstream.db"')
        db = ""
    raw_sources = document.get("sources", [])
    if not isinstance(raw_sources, list):
        problems.append("[[sources]] must be a list of tables, each starting with a [[sources]] line")
        raw_sources = []
    sources = []
    for number, raw in enumerate(raw_sources, start=1):
        source, source_problems = parse_source(raw, number)
        problems.extend(source_problems)
        if source is not None:
            sources.append(source)
    names = [source.name for source in sources]
    problems.extend(f'two sources are named "{name}"; give each a different name'
                    for name in sorted({name for name in names if names.count(name) > 1}))
    return Settings(path=path, db=str(db), sources=sources, errors=[f"{path}: {p}" for p in problems],
                    values=document, text=text)


def setting_fields(source_or_class) -> list:
    """A source's settings keys in the file's order: its own first, then the AWS access keys."""
    shared = {spec.name for spec in fields(AwsSourceSettings)}
    specs = fields(source_or_class)
    return [spec for spec in specs if spec.name not in shared] + [spec for spec in specs if spec.name in shared]


def parse_source(raw: Any, number: int = 1) -> tuple[Source | None, list[str]]:
    """One [[sources]] table -> a Source, or None and the problems found (each names the source)."""
    if not isinstance(raw, dict):
        return None, [f"source {number} must be a table of settings"]
    label = f'source {number} ("{raw["name"]}")' if isinstance(raw.get("name"), str) else f"source {number}"
    secrets = sorted(key for key in raw if key.lower() in SECRET_KEYS)
    if secrets:
        return None, [f"{label} holds {', '.join(secrets)}: never write credentials here; remove the line and use "
                      "an AWS profile, environment variables or an instance role instead"]
    kind = raw.get("kind")
    if not isinstance(kind, str) or kind not in SOURCE_CLASSES:
        return None, [f'{label} has kind = {kind!r}; use one of {", ".join(repr(k) for k in SOURCE_CLASSES)}']
    cls = SOURCE_CLASSES[kind]
    known = {f.name: f for f in setting_fields(cls)}
    problems = [f'{label} has an unknown setting "{key}"; known settings for kind "{kind}": {", ".join(known)}'
                for key in raw if key not in known and key != "kind"]
    values = {"name": raw.get("name") or f"{kind}-{number}"}
    for name, spec in known.items():
        if name == "name" or name not in raw:
            continue
        value = raw[name]
        wants_list = spec.type == "list[str]"
        if wants_list and not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
            problems.append(f'{label}: "{name}" must be a list of text values, like {name} = ["a", "b"]')
        elif not wants_list and not isinstance(value, str):
            problems.append(f'{label}: "{name}" must be text in quotes')
        else:
            values[name] = [item.strip() for item in value] if wants_list else value.strip()
    missing = [name for name, spec in known.items() if spec.default is spec.default_factory is MISSING
               and not values.get(name)]
    problems.extend(f'{label} needs "{name}"' for name in missing)
    if problems:
        return None, problems
    source = cls(**values)
    problems = [f"{label}: {problem}" for problem in check_source(source)]
    return (None if problems else source), problems


def check_source(source: Source) -> list[str]:
    """Problems with the values of one source (region, role ARN, dates, accounts), as sentences."""
    problems = source.access.problems() if isinstance(source, AwsSourceSettings) else []
    if isinstance(source, (S3Source, LookupSource)):
        dates = {}
        for name in ("since", "until"):
            value = getattr(source, name, "")
            if value:
                try:
                    dates[name] = date.fromisoformat(value)
                except ValueError:
                    problems.append(f'"{name}" = "{value}" is not a date; write it as YYYY-MM-DD')
        if len(dates) == 2 and dates["since"] > dates["until"]:
            problems.append(f'"since" ({source.since}) is after "until" ({source.until}); swap them')
        problems.extend(f'account "{account}" should be 12 digits' for account in getattr(source, "accounts", [])
                        if not ACCOUNT_PATTERN.match(account))
        problems.extend(f'region "{item}" in "regions" does not look like an AWS region' for item in source.regions
                        if not REGION_PATTERN.match(item))
    return problems


def source_table(source: Source) -> dict:
    """The [[sources]] entry for a source: kind first, empty optional values left out to keep the file short."""
    values = {"name": source.name, "kind": source.kind}
    for spec in setting_fields(source):
        value = getattr(source, spec.name)
        if spec.name != "name" and value not in ("", [], None):
            values[spec.name] = value
    return values


def save_settings(settings: Settings, path: str | os.PathLike | None = None) -> Path:
    """Write the settings back, changing only what differs so comments and unknown sections are kept."""
    if settings.errors:
        raise SettingsError(settings.path, settings.errors)
    path = Path(path) if path else settings.path
    document = settings.document
    if settings.db:
        if document.get("db") != settings.db:
            document["db"] = settings.db
    elif "db" in document:
        del document["db"]
    _update_sources(document, [source_table(source) for source in settings.sources])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(tomlkit.dumps(document), encoding="utf-8")
    os.replace(temporary, path)
    settings.path = path
    return path


def _update_sources(document: tomlkit.TOMLDocument, wanted: list[dict]) -> None:
    """Edit the [[sources]] array in place: tables matched by name keep their comments; others are added or removed."""
    existing = document.get("sources")
    if not wanted:
        if existing is not None:
            del document["sources"]
        return
    old = {table.get("name"): table for table in (existing or [])}
    array = tomlkit.aot()
    for values in wanted:
        table = old.get(values["name"])
        new = table is None
        if new:
            table = tomlkit.table()
        for key in [key for key in table if key not in values]:
            del table[key]
        for key, value in values.items():
            if table.get(key) != value:
                table[key] = value
        if new:
            table.add(tomlkit.nl())
        array.append(table)
    document["sources"] = array
