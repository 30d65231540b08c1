"""Athena DDL over the lake: the Parquet table with partition projection built from the compactor's own path
template (lake.PARTITION_TEMPLATE), and the AWS-documented raw CloudTrail JSON table with a flat view over it."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs

from trailstream.config import BackendSettings
from trailstream.ingest import lake

# Arrow type -> the Hive type Athena's CREATE TABLE spells.
_HIVE_TYPES = {pa.string(): "string", pa.int8(): "tinyint", pa.int64(): "bigint"}
# The raw trail's own layout: AWSLogs/ACCOUNT/CloudTrail/REGION/YYYY/MM/DD/ (the date projection's format).
RAW_TEMPLATE = "${region}/${date}"
RAW_DATE_FORMAT = "yyyy/MM/dd"
LAKE_DATE_FORMAT = "yyyy-MM-dd"


def _quoted(values: list[str]) -> str:
    """A projection enum: comma-separated, no whitespace (a leading space silently matches nothing in Athena)."""
    return ",".join(value.strip() for value in values)


def _properties(items: dict[str, str]) -> str:
    return "TBLPROPERTIES (\n" + ",\n".join(f"  '{key}' = '{value}'" for key, value in items.items()) + "\n)"


def list_lake_partitions(location: str) -> tuple[list[str], list[str], str | None]:
    """The accounts and regions the lake holds (for the projection enums) and its first day."""
    fs, base = lake.open_lake(location)
    folders = [info.path[len(base) + 1:] for info in fs.get_file_info(pafs.FileSelector(base, recursive=True,
               allow_not_found=True)) if info.type == pafs.FileType.Directory]
    parts = [dict(piece.split("=", 1) for piece in folder.split("/")) for folder in folders if folder.count("/") == 2]
    accounts = sorted({part["account"] for part in parts})
    regions = sorted({part["region"] for part in parts})
    return accounts, regions, min((part["date"] for part in parts), default=None)


def lake_table_ddl(settings: BackendSettings, accounts: list[str], regions: list[str], first_day: str) -> str:
    """CREATE EXTERNAL TABLE over the compactor's Parquet, partitions projected (never listed or crawled)."""
    location = settings.lake.rstrip("/")
    columns = ",\n".join(f"  `{f.name}` {_HIVE_TYPES[f.type]}" for f in lake.LAKE_SCHEMA)
    partitions = ", ".join(f"`{key}` string" for key in lake.PARTITION_KEYS)
    properties = _properties({
        "projection.enabled": "true",
        "projection.account.type": "enum",
        "projection.account.values": _quoted(accounts),
        "projection.region.type": "enum",
        "projection.region.values": _quoted(regions),
        "projection.date.type": "date",
        "projection.date.format": LAKE_DATE_FORMAT,
        "projection.date.range": f"{first_day},NOW",
        "projection.date.interval": "1",
        "projection.date.interval.unit": "DAYS",
        "storage.location.template": f"{location}/{lake.PARTITION_TEMPLATE}",
        "parquet.compression": lake.COMPRESSION.upper(),
    })
    return (f"CREATE EXTERNAL TABLE IF NOT EXISTS `{settings.database}`.`{settings.table}` (\n{columns}\n)\n"
            f"PARTITIONED BY ({partitions})\nSTORED AS PARQUET\nLOCATION '{location}/'\n{properties}")


RAW_COLUMNS = """  eventversion string,
  useridentity struct<type:string, principalid:string, arn:string, accountid:string, invokedby:string,
    accesskeyid:string, username:string, onbehalfof:struct<userid:string, identitystorearn:string>,
    sessioncontext:struct<attributes:struct<mfaauthenticated:string, creationdate:string>,
      sessionissuer:struct<type:string, principalid:string, arn:string, accountid:string, username:string>,
      ec2roledelivery:string, webidfederationdata:struct<federatedprovider:string, attributes:map<string,string>>>>,
  eventtime string, eventsource string, eventname string, awsregion string, sourceipaddress string,
  useragent string, errorcode string, errormessage string, requestparameters string, responseelements string,
  additionaleventdata string, requestid string, eventid string,
  resources array<struct<arn:string, accountid:string, type:string>>,
  eventtype string, apiversion string, readonly string, recipientaccountid string, serviceeventdetails string,
  sharedeventid string, vpcendpointid string, eventcategory string,
  tlsdetails struct<tlsversion:string, ciphersuite:string, clientprovidedhostheader:string>"""


def raw_table_ddl(settings: BackendSettings, regions: list[str], first_day: str) -> str:
    """The raw CloudTrail JSON table as AWS documents it (JsonSerDe, CloudTrailInputFormat), region and day
    projected over the trail's own folders: for fields outside the lake's flat columns."""
    location = settings.trail.rstrip("/")
    properties = _properties({
        "projection.enabled": "true",
        "projection.region.type": "enum",
        "projection.region.values": _quoted(regions),
        "projection.date.type": "date",
        "projection.date.format": RAW_DATE_FORMAT,
        "projection.date.range": f"{first_day.replace('-', '/')},NOW",
        "projection.date.interval": "1",
        "projection.date.interval.unit": "DAYS",
        "storage.location.template": f"{location}/{RAW_TEMPLATE}",
    })
    return (f"CREATE EXTERNAL TABLE IF NOT EXISTS `{settings.database}`.`{settings.table}_raw` (\n{RAW_COLUMNS}\n)\n"
            "PARTITIONED BY (`region` string, `date` string)\n"
            "ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'\n"
            "STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'\n"
            "OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'\n"
            f"LOCATION '{location}/'\n{properties}")


def raw_view_sql(settings: BackendSettings) -> str:
    """A view naming the raw table's fields as the lake's columns, for queries the flat schema cannot answer."""
    return (
        f'CREATE OR REPLACE VIEW "{settings.database}"."{settings.table}_raw_flat" AS SELECT '
        "eventid AS event_id, eventtime AS event_time, eventsource AS event_source, eventname AS event_name, "
        "awsregion AS aws_region, coalesce(recipientaccountid, useridentity.accountid) AS account_id, "
        "useridentity.arn AS principal_arn, useridentity.type AS user_type, "
        "useridentity.accesskeyid AS access_key_id, sourceipaddress AS source_ip, useragent AS user_agent, "
        "errorcode AS error_code, errormessage AS error_message, eventtype AS event_type, "
        "eventcategory AS event_category, requestparameters AS request_parameters, "
        "responseelements AS response_elements, additionaleventdata AS additional_event_data, "
        "useridentity, resources, tlsdetails, region, date "
        f'FROM "{settings.database}"."{settings.table}_raw"'
    )


def athena_statements(settings: BackendSettings) -> list[str]:
    """Every statement `athena-ddl` prints and `--apply` runs, in order; the lake must already hold a partition."""
    if not settings.lake:
        raise lake.LakeError("set [backend] lake = \"s3://BUCKET/PREFIX\" (where `compact --to` writes) first")
    accounts, regions, first_day = list_lake_partitions(settings.lake)
    if first_day is None:
        raise lake.LakeError(f"the lake at {settings.lake} holds no partitions yet: run `compact --to` first")
    statements = [f"CREATE DATABASE IF NOT EXISTS `{settings.database}`",
                  lake_table_ddl(settings, accounts, regions, first_day)]
    if settings.trail:
        statements += [raw_table_ddl(settings, [r for r in regions if r != lake.UNKNOWN], first_day),
                       raw_view_sql(settings)]
    return statements
