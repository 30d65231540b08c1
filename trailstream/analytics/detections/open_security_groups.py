"""Ingress rules letting the whole internet reach an administration port (SSH, RDP, databases)."""

from __future__ import annotations

import polars as pl

from trailstream import catalog
from trailstream.analytics import transforms
from trailstream.analytics.detections.common import Finding
from trailstream.analytics.detections.events import single_event_findings, successful_calls, who
from trailstream.analytics.detections.settings import DetectionSettings
from trailstream.filters import EventFilter

FINDING_TYPE = "security_group_open_to_world"
SETTINGS = ()  # the ports are catalog.ADMIN_PORTS


def _admin_ports() -> pl.Expr:
    """The administration ports a rule (protocol, from_port, to_port) covers."""
    return pl.concat_list([
        pl.when((pl.col("protocol") == "all") | pl.col("from_port").is_null()
                | ((pl.col("from_port") <= port) & (pl.col("to_port").fill_null(pl.col("from_port")) >= port)))
        .then(pl.lit(port))
        for port in catalog.ADMIN_PORTS
    ]).list.drop_nulls()


def detect_world_open_security_groups(conn, event_filter: EventFilter | None = None,
                                      settings: DetectionSettings | None = None) -> list[Finding]:
    """One finding per call opening an administration port of a security group to the whole internet."""
    events = successful_calls(conn, event_filter, catalog.SECURITY_GROUP_RULE_EVENTS)
    world = pl.col("open_to_world") | pl.col("peer").str.ends_with("/0").fill_null(False)
    opened = (
        transforms.security_group_rules(events).lazy()
        .filter((pl.col("action") == "authorize") & (pl.col("direction") == "ingress") & world
                & (pl.col("protocol") != "icmp") & (pl.col("protocol") != "icmpv6") & transforms.FAILED.not_())
        .with_columns(ports=_admin_ports())
        .filter(pl.col("ports").list.len() > 0)
        .group_by("event_id", maintain_order=True)
        .agg(ports=pl.col("ports").list.explode(keep_nulls=False, empty_as_null=False).unique().sort(),
             peers=pl.col("peer").drop_nulls().unique().sort(),
             group_id=pl.col("group_id").first())
        .collect()
    )
    flagged = events.join(opened, on="event_id")
    port_label = pl.when(pl.col("ports").list.len() == 1).then(pl.lit("port")).otherwise(pl.lit("ports"))
    summary = pl.format("{} opened {} {} of security group {} to the whole internet ({}).", who(), port_label,
                        pl.col("ports").cast(pl.List(pl.String)).list.join(", "),
                        pl.col("group_id").fill_null("(unknown)"), pl.col("peers").list.join(", "))
    return single_event_findings(flagged, FINDING_TYPE, summary,
                                 details={"ports": pl.col("ports"), "peers": pl.col("peers"),
                                          "group_id": pl.col("group_id")})
