"""Downloads: charts as PNG and SVG (vl-convert) with their data as CSV; tables as CSV, JSON and Parquet.

Bytes are built only when asked (`Download.build()`), so offering a download costs nothing until it is used. Every CSV
TrailStream writes goes through `table_csv`, which makes it formula-safe (`spreadsheet_safe`).
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl
import vl_convert

from trailstream.filters import EventFilter
from trailstream.timefmt import utc_now

if TYPE_CHECKING:  # charts arrive built; reports and alerts import this module without drawing
    import altair as alt

EXPORT_WIDTH = 1200  # "container" width has no meaning outside a page: exported charts are drawn this wide
PNG_SCALE = 2
MIME_TYPES = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "csv": "text/csv",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}


@dataclass(frozen=True)
class Download:
    """One file a page offers: its button label, file name, MIME type and how to build its bytes."""

    label: str
    file_name: str
    mime: str
    build: Callable[[], bytes]


def export_file_name(what: str, event_filter: EventFilter | None, extension: str) -> str:
    """'trailstream_security-group-changes_2026-11-20_to_2026-11-27.csv': what, which period, which format."""
    slug = re.sub(r"[^a-z0-9]+", "-", what.lower()).strip("-") or "export"
    event_filter = event_filter or EventFilter()
    start = (event_filter.start or "beginning")[:10]
    end = (event_filter.end or utc_now())[:10]  # an open period ends today: say which day
    return f"trailstream_{slug}_{start}_to_{end}.{extension.lstrip('.')}"


def _fixed_width(spec):
    if isinstance(spec, dict):
        return {k: EXPORT_WIDTH if k == "width" and v == "container" else _fixed_width(v) for k, v in spec.items()}
    if isinstance(spec, list):
        return [_fixed_width(item) for item in spec]
    return spec


def _vega_lite_json(chart: alt.TopLevelMixin) -> str:
    """The chart's spec with every 'container' width replaced by a fixed export width."""
    return json.dumps(_fixed_width(chart.to_dict()))


def chart_png(chart: alt.TopLevelMixin, scale: float = PNG_SCALE) -> bytes:
    """The chart as a PNG image (twice the pixels by default, sharp on high-density screens)."""
    return vl_convert.vegalite_to_png(_vega_lite_json(chart), scale=scale)


def chart_svg(chart: alt.TopLevelMixin) -> bytes:
    """The chart as SVG text (UTF-8)."""
    return vl_convert.vegalite_to_svg(_vega_lite_json(chart)).encode()


def flat_for_text(frame: pl.DataFrame) -> pl.DataFrame:
    """Nested columns as JSON text, binary as hex and durations as seconds, so CSV can hold every column."""
    nested = [c for c, dtype in frame.schema.items() if dtype.is_nested()]
    return frame.with_columns(
        *(pl.struct(pl.col(c).alias("v")).struct.json_encode().str.json_path_match("$.v").alias(c) for c in nested),
        pl.col(pl.Binary).bin.encode("hex"),
        pl.col(pl.Duration).dt.total_seconds(fractional=True),
    )


# OWASP's CSV injection list: a spreadsheet runs a cell beginning with one of these as a formula.
FORMULA_START = r"^[=+\-@\t\r]"


def _safe_text(text: str) -> str:
    return "'" + text if re.match(FORMULA_START, text) else text


def spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Event text is attacker-controlled: a text cell or header beginning with =, +, -, @, tab or CR gets a leading
    single quote (OWASP), so Excel and LibreOffice show it instead of running it. Numeric columns are left alone."""
    text = [name for name, dtype in frame.schema.items() if dtype == pl.String or dtype in (pl.Categorical, pl.Enum)]
    safe = frame.with_columns(pl.col(text).cast(pl.String).str.replace(FORMULA_START, "'$0"))
    return safe.rename({name: _safe_text(name) for name in safe.columns})


def table_csv(frame: pl.DataFrame) -> bytes:
    """Formula-safe CSV with a header; times in ISO 8601 UTC, nested values as JSON text (then made safe too)."""
    return spreadsheet_safe(flat_for_text(frame)).write_csv(datetime_format="%Y-%m-%dT%H:%M:%S%.fZ").encode()


def table_json(frame: pl.DataFrame) -> bytes:
    """A JSON array of row objects (nested values stay nested)."""
    buffer = io.BytesIO()
    frame.with_columns(pl.col(pl.Duration).dt.total_seconds(fractional=True)).write_json(buffer)
    return buffer.getvalue()


def table_parquet(frame: pl.DataFrame) -> bytes:
    """Parquet keeps every dtype (times, lists, structs) exactly."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


def table_downloads(frame: pl.DataFrame, what: str, event_filter: EventFilter | None) -> list[Download]:
    """CSV, JSON and Parquet downloads of a table."""
    builders = {"csv": table_csv, "json": table_json, "parquet": table_parquet}
    return [
        Download(extension.upper(), export_file_name(what, event_filter, extension), MIME_TYPES[extension],
                 lambda build=build: build(frame))
        for extension, build in builders.items()
    ]


def chart_downloads(
    chart: alt.TopLevelMixin, data: pl.DataFrame, what: str, event_filter: EventFilter | None
) -> list[Download]:
    """PNG and SVG of a chart, and the data it draws as CSV."""
    return [
        Download("PNG", export_file_name(what, event_filter, "png"), MIME_TYPES["png"], lambda: chart_png(chart)),
        Download("SVG", export_file_name(what, event_filter, "svg"), MIME_TYPES["svg"], lambda: chart_svg(chart)),
        Download("CSV", export_file_name(what, event_filter, "csv"), MIME_TYPES["csv"], lambda: table_csv(data)),
    ]
