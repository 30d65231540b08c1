"""Pure polars transforms: event frames in, the tables pages show out (one lazy chain each, no loops over rows).

Inputs are frames shaped like `queries.EVENT_SCHEMA` (JSON columns as text). Which event names belong to which
table comes only from `catalog`; JSON is read with `str.json_path_match` (lenient) and, where a list must be
exploded, `str.json_decode` with an explicit dtype on just that list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import polars as pl

from trailstream import catalog

# --- Reusable expressions -----------------------------------------------------------


def request(path: str) -> pl.Expr:
    """A scalar (as text) or sub-document (as JSON text) of requestParameters; null when absent."""
    return pl.col("request_parameters").str.json_path_match(path)


def response(path: str) -> pl.Expr:
    """A scalar (as text) or sub-document (as JSON text) of responseElements; null when absent."""
    return pl.col("response_elements").str.json_path_match(path)


def first_of(*exprs: pl.Expr) -> pl.Expr:
    """The first non-null of several places a field may be (request, then response...)."""
    return pl.coalesce(*exprs)


def decode_list(text: pl.Expr, dtype: pl.List, decode: bool = True) -> pl.Expr:
    """Decode a JSON array (text) with an explicit dtype; anything that is not an array becomes null."""
    if not decode:
        return pl.lit(None, dtype=dtype)
    return pl.when(text.str.starts_with("[")).then(text).str.json_decode(dtype)


def tolerant(chain: Callable[[bool], pl.LazyFrame]) -> pl.DataFrame:
    """Collect a chain that decodes JSON lists; should one record's list have an unexpected shape, collect it again
    without the lists (one row per event, those details empty) rather than fail the page."""
    try:
        return chain(True).collect()
    except pl.exceptions.ComputeError:
        return chain(False).collect()


def kind_of(kinds: tuple[tuple[str, tuple[str, ...]], ...]) -> pl.Expr:
    """Label each event with the catalog group its name belongs to."""
    mapping = {name: label for label, names in kinds for name in names}
    return pl.col("event_name").replace_strict(mapping, default=None, return_dtype=pl.String)


FAILED = pl.col("error_code").is_not_null() & (pl.col("error_code") != "")
PROTOCOL_NAMES = {"-1": "all", "6": "tcp", "17": "udp", "1": "icmp", "58": "icmpv6"}
# Who did it and from where: carried through to every use-case table.
CONTEXT_COLUMNS = ("principal", "source_ip", "account_id", "aws_region", "error_code", "event_id")


def _protocol(expr: pl.Expr) -> pl.Expr:
    return expr.str.to_lowercase().replace(PROTOCOL_NAMES)


def _port_range(protocol: pl.Expr, from_port: pl.Expr, to_port: pl.Expr) -> pl.Expr:
    """'22', '1024-65535' or 'all', as people write port ranges; null when no protocol is known."""
    return (
        pl.when(protocol.is_null())
        .then(None)
        .when((protocol == "all") | from_port.is_null() | ((from_port == -1) & (to_port == -1)))
        .then(pl.lit("all"))
        .when((from_port == to_port) | to_port.is_null())
        .then(from_port.cast(pl.String))
        .otherwise(pl.concat_str(from_port.cast(pl.String), pl.lit("-"), to_port.cast(pl.String)))
    )


def _with_context(frame: pl.LazyFrame, *columns: str) -> pl.LazyFrame:
    """Keep the table's columns then who/where/error, in a stable order."""
    return frame.select("event_time", "event_name", *columns, *CONTEXT_COLUMNS)


def _only(events: pl.DataFrame, names: tuple[str, ...]) -> pl.LazyFrame:
    return events.lazy().filter(pl.col("event_name").is_in(names)).sort("event_time", descending=True)


# --- Network & security groups ----------------------------------------------------

# One peer of a security group rule: an IPv4/IPv6 range, another group, a prefix list, or a rule ID (revoke by ID).
_PEER = pl.Struct(
    {
        "cidrIp": pl.String,
        "cidrIpv6": pl.String,
        "groupId": pl.String,
        "groupName": pl.String,
        "userId": pl.String,
        "prefixListId": pl.String,
        "securityGroupRuleId": pl.String,
        "description": pl.String,
    }
)
_PEERS = pl.Struct({"items": pl.List(_PEER)})
_PERMISSIONS = pl.List(
    pl.Struct(
        {
            "ipProtocol": pl.String,
            "fromPort": pl.String,
            "toPort": pl.String,
            "ipRanges": _PEERS,
            "ipv6Ranges": _PEERS,
            "groups": _PEERS,
            "prefixListIds": _PEERS,
        }
    )
)
_NO_PEERS = pl.lit([], dtype=pl.List(_PEER))
_PERMISSION = pl.col("permission")


def _permission_peers(field: str) -> pl.Expr:
    return _PERMISSION.struct.field(field).struct.field("items").fill_null(_NO_PEERS)


# The CLI's short form (--cidr / --source-group) puts one peer at the top of requestParameters.
_FLAT_PEER = (
    pl.when(request("$.cidrIp").is_not_null() | request("$.sourceSecurityGroupName").is_not_null())
    .then(
        pl.concat_list(
            pl.struct(
                cidrIp=request("$.cidrIp"),
                cidrIpv6=pl.lit(None, pl.String),
                groupId=pl.lit(None, pl.String),
                groupName=request("$.sourceSecurityGroupName"),
                userId=request("$.sourceSecurityGroupOwnerId"),
                prefixListId=pl.lit(None, pl.String),
                securityGroupRuleId=pl.lit(None, pl.String),
                description=pl.lit(None, pl.String),
            )
        )
    )
    .otherwise(_NO_PEERS)
)
_PEER_FIELD = pl.col("peer").struct.field


# A /0 peer is every address, however its host bits are written (0.0.0.0/0, ::/0, 208.236.235.254/0).
_IS_WORLD_PEER = pl.col("peer").str.ends_with("/0")


# What a rule's peer is (an address range, another group, a prefix list, a rule ID) and its value.
_PEER_KIND = (
    pl.when(_PEER_FIELD("cidrIp").is_not_null())
    .then(pl.lit("ipv4"))
    .when(_PEER_FIELD("cidrIpv6").is_not_null())
    .then(pl.lit("ipv6"))
    .when(_PEER_FIELD("groupId").is_not_null() | _PEER_FIELD("groupName").is_not_null())
    .then(pl.lit("security group"))
    .when(_PEER_FIELD("prefixListId").is_not_null())
    .then(pl.lit("prefix list"))
    .when(_PEER_FIELD("securityGroupRuleId").is_not_null())
    .then(pl.lit("rule id"))
)
_PEER_VALUE = first_of(
    *(_PEER_FIELD(name) for name in ("cidrIp", "cidrIpv6", "groupId", "groupName", "prefixListId",
                                     "securityGroupRuleId"))
)


def security_group_rules(events: pl.DataFrame) -> pl.DataFrame:
    """One row per rule and peer of every authorize/revoke call; open_to_world marks rules that allow any address."""
    return tolerant(lambda decode: _security_group_rule_rows(events, decode))


def _security_group_rule_rows(events: pl.DataFrame, decode: bool) -> pl.LazyFrame:
    rule_ids = decode_list(request("$.securityGroupRuleIds.items"), pl.List(_PEER), decode).fill_null(_NO_PEERS)
    protocol = _protocol(first_of(_PERMISSION.struct.field("ipProtocol"), request("$.ipProtocol")))
    from_port = first_of(_PERMISSION.struct.field("fromPort"), request("$.fromPort")).cast(pl.Int64, strict=False)
    to_port = first_of(_PERMISSION.struct.field("toPort"), request("$.toPort")).cast(pl.Int64, strict=False)
    return (
        _only(events, catalog.SECURITY_GROUP_RULE_EVENTS)
        .with_columns(
            permission=decode_list(request("$.ipPermissions.items"), _PERMISSIONS, decode),
            action=pl.when(pl.col("event_name").str.starts_with("Authorize")).then(pl.lit("authorize")).otherwise(
                pl.lit("revoke")
            ),
            direction=pl.when(pl.col("event_name").str.ends_with("Egress")).then(pl.lit("egress")).otherwise(
                pl.lit("ingress")
            ),
            group_id=first_of(request("$.groupId"), request("$.groupName")),
        )
        .explode("permission", empty_as_null=True, keep_nulls=True)
        .with_columns(
            peer=pl.concat_list(
                _permission_peers("ipRanges"),
                _permission_peers("ipv6Ranges"),
                _permission_peers("groups"),
                _permission_peers("prefixListIds"),
                pl.when(_PERMISSION.is_null()).then(_FLAT_PEER).otherwise(_NO_PEERS),
                pl.when(_PERMISSION.is_null()).then(rule_ids).otherwise(_NO_PEERS),
            ),
            protocol=protocol,
            from_port=from_port,
            to_port=to_port,
        )
        .explode("peer", empty_as_null=True, keep_nulls=True)
        .with_columns(
            peer_kind=_PEER_KIND,
            peer=_PEER_VALUE,
            description=_PEER_FIELD("description"),
            port_range=_port_range(protocol, from_port, to_port),
        )
        .with_columns(open_to_world=(_IS_WORLD_PEER & (pl.col("action") == "authorize")).fill_null(False))
        .pipe(
            _with_context,
            "action",
            "direction",
            "group_id",
            "protocol",
            "from_port",
            "to_port",
            "port_range",
            "peer_kind",
            "peer",
            "description",
            "open_to_world",
        )
    )


_NETWORK_RESOURCE_ID = first_of(
    request("$.groupId"),
    response("$.groupId"),
    request("$.groupName"),
    request("$.networkAclId"),
    response("$.networkAcl.networkAclId"),
    request("$.routeTableId"),
    response("$.routeTable.routeTableId"),
    request("$.subnetId"),
    response("$.subnet.subnetId"),
    request("$.internetGatewayId"),
    response("$.internetGateway.internetGatewayId"),
    request("$.natGatewayId"),
    request("$.DeleteNatGatewayRequest.NatGatewayId"),
    response("$.CreateNatGatewayResponse.natGateway.natGatewayId"),
    request("$.vpcPeeringConnectionId"),
    response("$.vpcPeeringConnection.vpcPeeringConnectionId"),
    response("$.CreateVpcEndpointResponse.vpcEndpoint.vpcEndpointId"),
    request("$.DeleteVpcEndpointsRequest.VpcEndpointId.content"),
    request("$.DeleteFlowLogsRequest.FlowLogId.content"),
    response("$.CreateFlowLogsResponse.flowLogIdSet.item"),
    request("$.vpcId"),
    response("$.vpc.vpcId"),
    request("$.associationId"),
)
_ROUTE_TARGET = first_of(
    *(
        request(f"$.{field}")
        for field in (
            "gatewayId",
            "natGatewayId",
            "instanceId",
            "networkInterfaceId",
            "vpcPeeringConnectionId",
            "transitGatewayId",
            "egressOnlyInternetGatewayId",
            "vpcEndpointId",
            "localGatewayId",
            "carrierGatewayId",
            "coreNetworkArn",
        )
    )
)
_NETWORK_CIDR = first_of(
    request("$.cidrBlock"),
    request("$.ipv6CidrBlock"),
    request("$.destinationCidrBlock"),
    request("$.destinationIpv6CidrBlock"),
    request("$.destinationPrefixListId"),
    response("$.vpc.cidrBlock"),
    response("$.subnet.cidrBlock"),
)
_EGRESS = request("$.egress")


def network_changes(events: pl.DataFrame) -> pl.DataFrame:
    """One row per network change (security group, ACL, route, VPC, subnet, gateway, peering) with its key fields."""
    protocol = _protocol(first_of(request("$.aclProtocol"), request("$.ipProtocol"), request("$.protocol")))
    from_port = first_of(request("$.portRange.from"), request("$.fromPort")).cast(pl.Int64, strict=False)
    to_port = first_of(request("$.portRange.to"), request("$.toPort")).cast(pl.Int64, strict=False)
    rule_action = request("$.ruleAction").str.to_lowercase()
    world_in_request = pl.col("request_parameters").str.contains_any([f'"{cidr}"' for cidr in catalog.WORLD_CIDRS])
    return (
        _only(events, catalog.NETWORK_EVENTS)
        .with_columns(
            resource_kind=kind_of(catalog.NETWORK_RESOURCE_KINDS),
            resource_id=_NETWORK_RESOURCE_ID,
            vpc_id=first_of(request("$.vpcId"), response("$.vpc.vpcId"), response("$.subnet.vpcId")),
            cidr=_NETWORK_CIDR,
            direction=pl.when(_EGRESS == "true")
            .then(pl.lit("egress"))
            .when(_EGRESS == "false")
            .then(pl.lit("ingress"))
            .when(pl.col("event_name").str.ends_with("Egress"))
            .then(pl.lit("egress"))
            .when(pl.col("event_name").str.ends_with("Ingress"))
            .then(pl.lit("ingress")),
            rule_number=request("$.ruleNumber").cast(pl.Int64, strict=False),
            rule_action=rule_action,
            protocol=protocol,
            port_range=_port_range(protocol, from_port, to_port),
            target=_ROUTE_TARGET,
            open_to_world=(
                world_in_request
                & ~pl.col("event_name").str.starts_with("Revoke")
                & ~pl.col("event_name").str.starts_with("Delete")
                & (rule_action.fill_null("allow") == "allow")
            ).fill_null(False),
        )
        .pipe(
            _with_context,
            "resource_kind",
            "resource_id",
            "vpc_id",
            "cidr",
            "direction",
            "rule_number",
            "rule_action",
            "protocol",
            "port_range",
            "target",
            "open_to_world",
        )
        .collect()
    )


# --- EC2 instances -------------------------------------------------------------------

_INSTANCE_ITEMS = pl.List(
    pl.Struct(
        {
            "instanceId": pl.String,
            "imageId": pl.String,
            "instanceType": pl.String,
            "keyName": pl.String,
            "subnetId": pl.String,
            "instanceState": pl.Struct({"name": pl.String}),  # RunInstances
            "currentState": pl.Struct({"name": pl.String}),  # Start/Stop/TerminateInstances
            "previousState": pl.Struct({"name": pl.String}),
        }
    )
)
# Attributes ModifyInstanceAttribute can change, as they appear in requestParameters.
INSTANCE_ATTRIBUTES = (
    "instanceType",
    "userData",
    "disableApiTermination",
    "disableApiStop",
    "instanceInitiatedShutdownBehavior",
    "groupSet",
    "sourceDestCheck",
    "ebsOptimized",
    "sriovNetSupport",
    "enaSupport",
    "kernel",
    "ramdisk",
    "blockDeviceMapping",
)
_ITEM = pl.col("instance").struct.field


def instance_changes(events: pl.DataFrame) -> pl.DataFrame:
    """One row per instance and call (launch, start, stop, reboot, terminate, modify...) with type, AMI and state."""
    return tolerant(lambda decode: _instance_rows(events, decode))


def _instance_rows(events: pl.DataFrame, decode: bool) -> pl.LazyFrame:
    response_items = decode_list(response("$.instancesSet.items"), _INSTANCE_ITEMS, decode)
    request_items = decode_list(request("$.instancesSet.items"), _INSTANCE_ITEMS, decode)
    return (
        _only(events, catalog.INSTANCE_EVENTS)
        .with_columns(
            instance=pl.when(response_items.list.len() > 0).then(response_items).otherwise(request_items),
            request_image=request("$.instancesSet.items[0].imageId"),
            request_type=first_of(request("$.instanceType.value"), request("$.instanceType")),
            attribute=pl.when(pl.col("event_name").str.starts_with("Modify")).then(
                first_of(
                    request("$.attribute"),
                    *(pl.when(request(f"$.{name}").is_not_null()).then(pl.lit(name)) for name in INSTANCE_ATTRIBUTES),
                )
            ),
        )
        .explode("instance", empty_as_null=True, keep_nulls=True)
        .with_columns(
            instance_id=first_of(_ITEM("instanceId"), request("$.instanceId")),
            instance_type=first_of(_ITEM("instanceType"), pl.col("request_type")),
            image_id=first_of(_ITEM("imageId"), pl.col("request_image"), request("$.imageId")),
            key_name=first_of(_ITEM("keyName"), request("$.keyName"), request("$.instancesSet.items[0].keyName")),
            subnet_id=first_of(_ITEM("subnetId"), request("$.subnetId")),
            previous_state=_ITEM("previousState").struct.field("name"),
            current_state=first_of(_ITEM("currentState").struct.field("name"), _ITEM("instanceState").struct.field("name")),
        )
        .pipe(
            _with_context,
            "instance_id",
            "instance_type",
            "image_id",
            "key_name",
            "subnet_id",
            "previous_state",
            "current_state",
            "attribute",
        )
    )


# --- Elastic IPs -----------------------------------------------------------------------


def elastic_ip_changes(events: pl.DataFrame) -> pl.DataFrame:
    """One row per Elastic IP call with the public IP, allocation, association and instance or interface."""
    return (
        _only(events, catalog.ELASTIC_IP_EVENTS)
        .with_columns(
            public_ip=first_of(request("$.publicIp"), response("$.publicIp")),
            allocation_id=first_of(request("$.allocationId"), response("$.allocationId")),
            association_id=first_of(request("$.associationId"), response("$.associationId")),
            instance_id=request("$.instanceId"),
            network_interface_id=request("$.networkInterfaceId"),
            private_ip=request("$.privateIpAddress"),
            domain=first_of(response("$.domain"), request("$.domain")),
        )
        .pipe(
            _with_context,
            "public_ip",
            "allocation_id",
            "association_id",
            "instance_id",
            "network_interface_id",
            "private_ip",
            "domain",
        )
        .collect()
    )


# --- IAM -------------------------------------------------------------------------------

_IAM_ACTION = pl.col("event_name").str.extract(
    r"^(Create|Delete|Update|Attach|Detach|Put|Add|Remove|Tag|Untag|Set|Enable|Deactivate|Resync|Change|Upload|Replace)",
    1,
)


def iam_changes(events: pl.DataFrame) -> pl.DataFrame:
    """One row per IAM change: the entity kind and name, the policy, access key or MFA device involved."""
    policy = first_of(
        request("$.policyArn"), response("$.policy.arn"), request("$.policyName"), request("$.permissionsBoundary")
    )
    access_key = first_of(request("$.accessKeyId"), response("$.accessKey.accessKeyId"))
    mfa_device = first_of(request("$.serialNumber"), response("$.virtualMFADevice.serialNumber"))
    provider = first_of(
        request("$.sAMLProviderArn"),
        response("$.sAMLProviderArn"),
        request("$.openIDConnectProviderArn"),
        response("$.openIDConnectProviderArn"),
        request("$.name"),
    )
    return (
        _only(events, catalog.IAM_EVENTS)
        .with_columns(
            entity_kind=kind_of(catalog.IAM_ENTITY_KINDS),
            action=_IAM_ACTION.str.to_lowercase(),
            user_name=first_of(request("$.userName"), response("$.user.userName")),
            group_name=request("$.groupName"),
            role_name=first_of(request("$.roleName"), response("$.role.roleName")),
            instance_profile=request("$.instanceProfileName"),
            policy=policy,
            access_key_id=access_key,
            mfa_device=mfa_device,
        )
        .with_columns(
            target=first_of(
                pl.col("role_name"),
                pl.col("group_name"),
                pl.col("user_name"),
                pl.col("instance_profile"),
                policy,
                provider,
                mfa_device,
            ),
            admin_policy=pl.col("policy").is_in(catalog.ADMIN_POLICY_ARNS).fill_null(False),
        )
        .pipe(
            _with_context,
            "entity_kind",
            "action",
            "target",
            "user_name",
            "group_name",
            "role_name",
            "policy",
            "admin_policy",
            "access_key_id",
            "mfa_device",
        )
        .collect()
    )


# --- Rare errors -------------------------------------------------------------------------

ERROR_KEYS = ("event_source", "event_name", "error_code")


def rank_rare_errors(
    error_counts: pl.DataFrame,
    first_seen_ever: pl.DataFrame | None = None,
    period_start: datetime | None = None,
    by: tuple[str, ...] = ERROR_KEYS,
) -> pl.DataFrame:
    """Rank error codes (or service/API/code combinations) rarest first, with first/last seen and a trend.

    The trend compares the later half of the period's days with the earlier half ('rising', 'falling', 'steady');
    'once' is a single occurrence; 'new' means never seen before period_start (needs first_seen_ever from
    queries.query_error_first_seen).
    """
    first_day, last_day = pl.col("day").min(), pl.col("day").max()
    later_half = pl.col("day") > first_day + (last_day - first_day) / 2
    ranked = (
        error_counts.lazy()
        .with_columns(
            earlier=pl.when(later_half).then(0).otherwise(pl.col("events")),
            later=pl.when(later_half).then(pl.col("events")).otherwise(0),
            one_day=first_day == last_day,
        )
        .group_by(list(by))
        .agg(
            events=pl.col("events").sum(),
            days_seen=pl.col("day").n_unique().cast(pl.Int64),
            first_seen=pl.col("first_seen").min(),
            last_seen=pl.col("last_seen").max(),
            earlier=pl.col("earlier").sum(),
            later=pl.col("later").sum(),
            one_day=pl.col("one_day").first(),
        )
    )
    if first_seen_ever is not None and period_start is not None:
        ever = first_seen_ever.lazy().group_by(list(by)).agg(first_seen_ever=pl.col("first_seen_ever").min())
        is_new = pl.col("first_seen_ever") >= pl.lit(period_start.astimezone(timezone.utc))
        ranked = ranked.join(ever, on=list(by), how="left", nulls_equal=True).with_columns(is_new=is_new)
    else:
        ranked = ranked.with_columns(is_new=pl.lit(False))
    return (
        ranked.with_columns(
            trend=pl.when(pl.col("is_new"))
            .then(pl.lit("new"))
            .when(pl.col("events") == 1)
            .then(pl.lit("once"))
            .when(pl.col("one_day"))
            .then(pl.lit("steady"))
            .when(pl.col("later") > 1.5 * pl.col("earlier"))
            .then(pl.lit("rising"))
            .when(pl.col("later") * 1.5 < pl.col("earlier"))
            .then(pl.lit("falling"))
            .otherwise(pl.lit("steady")),
            share=pl.col("events") / pl.col("events").sum(),
        )
        .sort(["events", "last_seen", *by], descending=[False, True, *(False for _ in by)])
        .with_columns(rarity_rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64))
        .select("rarity_rank", *by, "events", "share", "days_seen", "first_seen", "last_seen", "trend")
        .collect()
    )


# --- Principal activity ------------------------------------------------------------------


def principal_summary(activity: pl.DataFrame) -> pl.DataFrame:
    """One row of headline numbers for a principal from queries.query_principal_activity's groups."""
    return (
        activity.lazy()
        .select(
            events=pl.col("events").sum().cast(pl.Int64),
            failed=pl.col("failed").sum().cast(pl.Int64),
            first_seen=pl.col("first_seen").min(),
            last_seen=pl.col("last_seen").max(),
            event_names=pl.col("event_name").drop_nulls().n_unique(),
            regions=pl.col("aws_region").drop_nulls().n_unique(),
        )
        .with_columns(
            error_rate=pl.when(pl.col("events") > 0).then(pl.col("failed") / pl.col("events")).otherwise(0.0)
        )
        .collect()
    )


def principal_breakdown(activity: pl.DataFrame, by: str) -> pl.DataFrame:
    """A principal's events per value of one activity column (event_name, event_source, aws_region), busiest first."""
    return (
        activity.lazy()
        .group_by(by)
        .agg(
            events=pl.col("events").sum(),
            failed=pl.col("failed").sum(),
            first_seen=pl.col("first_seen").min(),
            last_seen=pl.col("last_seen").max(),
        )
        .sort(["events", "last_seen"], descending=True, nulls_last=True)
        .collect()
    )


READ_PREFIXES = ("Describe", "List", "Get", "Head", "Lookup", "Search", "BatchGet")
READS = "reads (Describe, List, Get…)"


def principal_timeline(activity: pl.DataFrame, color: str = "event_name", top: int = 8) -> pl.DataFrame:
    """A principal's events per time bucket and per `color` value (the top ones, the rest as 'other'); by event
    name, reads fold into one series so the changes (TerminateInstances, AttachUserPolicy...) keep their names."""
    if color == "event_name":
        is_read = pl.any_horizontal(pl.col("event_name").str.starts_with(prefix) for prefix in READ_PREFIXES)
        activity = activity.with_columns(event_name=pl.when(is_read).then(pl.lit(READS)).otherwise("event_name"))
    per_bucket = (
        activity.lazy()
        .group_by("bucket", "bucket_end", color)
        .agg(events=pl.col("events").sum(), failed=pl.col("failed").sum())
        .collect()
    )
    return top_n_with_other(per_bucket, color, top)


# --- Charts' helpers -------------------------------------------------------------------------

OTHER = "other"


def top_n_with_other(frame: pl.DataFrame, column: str, n: int = 10, value: str = "events") -> pl.DataFrame:
    """Keep the n largest values of `column` (by total `value`); fold the rest into 'other' and re-aggregate."""
    keys = [c for c in frame.columns if c not in (column, value) and not frame.schema[c].is_numeric()]
    sums = [c for c in frame.columns if c != column and c not in keys]
    top = (
        frame.lazy()
        .group_by(column)
        .agg(pl.col(value).sum().alias("_total"))
        .sort(["_total", column], descending=[True, False], nulls_last=True)
        .head(n)
        .select(column)
    )
    return (
        frame.lazy()
        .with_columns(
            pl.when(pl.col(column).is_in(top.collect().get_column(column).implode()))
            .then(pl.col(column).fill_null("(none)"))
            .otherwise(pl.lit(OTHER))
            .alias(column)
        )
        .group_by(*keys, column)
        .agg(pl.col(sums).sum())
        .sort(*keys, column)
        .collect()
    )


# --- Ingestion health -----------------------------------------------------------------------

DEFAULT_QUIET_AFTER = timedelta(hours=6)
QUIET_GAPS = 2  # a pair is quiet once silent for this many of its longest gaps between files so far (and quiet_after)
PLACE = ("account_id", "aws_region")


def ingestion_health(
    deliveries: pl.DataFrame, places: pl.DataFrame | None = None, now: datetime | None = None,
    quiet_after: timedelta = DEFAULT_QUIET_AFTER,
) -> pl.DataFrame:
    """Per account and region: newest event, delivery lag, and a warning once it is silent far longer than usual.

    `deliveries` is bookkeeping.query_delivery_health() (a row per place its files name); `places`
    (queries.query_account_region_counts with seen=True) names every pair the events hold, so files not named as
    CloudTrail delivers them never make an unknown/unknown row. A pair is judged quiet from its trail files' rhythm
    only. A stopped trail looks exactly like a quiet account.
    """
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    deliveries = deliveries.lazy()
    if places is None:
        pairs = deliveries.with_columns(events=pl.col("records"), newest_event_time=pl.col("newest_file_event"))
    else:
        named = deliveries.filter(pl.col("account_id") != "unknown")
        pairs = (places.lazy().select(*PLACE, "events", newest_event_time="last_seen")
                 .with_columns(pl.col(PLACE).fill_null("unknown")).join(named, on=PLACE, how="left"))
    threshold = pl.max_horizontal(pl.lit(quiet_after), QUIET_GAPS * pl.col("longest_gap").fill_null(quiet_after))
    return (
        pairs.with_columns(silent_for=pl.lit(now) - pl.col("newest_event_time"))
        .with_columns(quiet=pl.when(pl.col("files").is_not_null()).then(pl.col("silent_for") > threshold))
        .with_columns(
            warning=pl.when(pl.col("quiet")).then(
                pl.format(
                    "No events from account {} in {} since {} ({} h): check that its trail is still logging "
                    "and delivering, a stopped trail looks exactly like a quiet account",
                    "account_id",
                    "aws_region",
                    pl.col("newest_event_time").dt.strftime("%Y-%m-%d %H:%M UTC"),
                    (pl.col("silent_for").dt.total_minutes() / 60).round(1),
                )
            )
        )
        .sort([pl.col("quiet").fill_null(False), "events", "account_id", "aws_region"],
              descending=[True, True, False, False])
        .collect()
    )


# --- Small frame facts the pages show -------------------------------------------------------------


def rows_where(frame: pl.DataFrame, flag: str) -> pl.DataFrame:
    """The rows whose boolean column `flag` is true."""
    return frame.filter(pl.col(flag).fill_null(False))


def distinct_count(frame: pl.DataFrame, column: str) -> int:
    return frame.get_column(column).drop_nulls().n_unique() if column in frame.columns else 0


def column_total(frame: pl.DataFrame, column: str) -> int:
    return int(frame.get_column(column).sum()) if column in frame.columns else 0


def count_equal(frame: pl.DataFrame, column: str, value) -> int:
    return frame.filter(pl.col(column) == value).height if column in frame.columns else 0


def column_values(frame: pl.DataFrame, column: str) -> list:
    """The non-empty values of one column, in order."""
    return frame.get_column(column).drop_nulls().to_list() if column in frame.columns else []


def event_counts(events: pl.DataFrame) -> dict[str, int]:
    """Headline numbers of an event table: rows, failed calls, distinct principals and accounts."""
    counts = events.select(
        pl.len().alias("Events"),
        (pl.col("error_code").is_not_null() & (pl.col("error_code") != "")).sum().alias("Failed calls"),
        pl.col("principal").n_unique().alias("Principals"),
        pl.col("account_id").n_unique().alias("Accounts"),
    )
    return {name: int(value) for name, value in counts.row(0, named=True).items()}


def rebin_timeline(frame: pl.DataFrame, every: str) -> pl.DataFrame:
    """A timeline (bucket, bucket_end, labels, counts) summed into coarser bins (a polars interval: "1mo"); bins
    already at least that wide are kept as they are."""
    keys = [c for c, dtype in frame.schema.items() if c not in ("bucket", "bucket_end") and not dtype.is_numeric()]
    sums = [c for c, dtype in frame.schema.items() if dtype.is_numeric()]
    ends = pl.col("bucket_end").max() if "bucket_end" in frame.columns else pl.col("bucket").max()
    return (
        frame.lazy()
        .group_by(pl.col("bucket").dt.truncate(every), *keys)
        .agg(pl.col(sums).sum(), ends.alias("_end"))
        .with_columns(bucket_end=pl.max_horizontal("_end", pl.col("bucket").dt.offset_by(every)))
        .select("bucket", "bucket_end", *keys, *sums)
        .sort("bucket", *keys, nulls_last=True)
        .collect()
    )


def severity_first(findings: list) -> list:
    """Findings most severe first (critical on top), newest first within a severity."""
    rank = {severity: i for i, severity in enumerate(catalog.SEVERITIES)}
    by_time = sorted(findings, key=lambda finding: finding.time, reverse=True)
    return sorted(by_time, key=lambda finding: rank.get(finding.severity, -1), reverse=True)


# --- Tables that answer "who did it" at a glance ------------------------------------------------------------------

GLANCE_FIRST = ("event_time", "principal", "event_name", "action")  # time, who, action; then target and detail
GLANCE_LAST = ("source_ip", "account_id", "aws_region", "error_code", "event_source", "user_agent", "event_id")


def glance_columns(frame: pl.DataFrame, first: tuple[str, ...] = GLANCE_FIRST) -> list[str]:
    """A change table's columns: time, who, action first, then the page's own target and detail columns, the
    generic ones last; columns empty (null or "") on every row are left out, the event ID kept for the viewer."""
    empty = frame.select(
        (pl.col(pl.String).is_null() | (pl.col(pl.String) == "")).all(),
        pl.exclude(pl.String).is_null().all(),
    ).row(0, named=True) if frame.height else {}
    ordered = [c for c in first if c in frame.columns]
    ordered += [c for c in frame.columns if c not in ordered and c not in GLANCE_LAST]
    ordered += [c for c in GLANCE_LAST if c in frame.columns]
    return [c for c in ordered if c == "event_id" or not empty.get(c, False)]


INSTANCE_LIFECYCLE = {"Launched": "RunInstances", "Started": "StartInstances", "Stopped": "StopInstances",
                      "Terminated": "TerminateInstances"}


def instance_lifecycle_counts(changes: pl.DataFrame) -> dict[str, int]:
    """Instances launched, started, stopped and terminated (successful calls, one per instance and call)."""
    ok = pl.col("error_code").is_null() | (pl.col("error_code") == "")
    counts = changes.select(**{label: (ok & (pl.col("event_name") == name)).sum()
                               for label, name in INSTANCE_LIFECYCLE.items()})
    return {label: int(value) for label, value in counts.row(0, named=True).items()}


def with_public_ip(changes: pl.DataFrame) -> pl.DataFrame:
    """Every Elastic IP row with its public address: calls naming only the allocation borrow it from the others."""
    by_allocation = changes.with_columns(
        public_ip=pl.coalesce("public_ip", pl.col("public_ip").drop_nulls().first().over("allocation_id")))
    return by_allocation.with_columns(
        public_ip=pl.coalesce("public_ip", pl.col("public_ip").drop_nulls().first().over("association_id")))


def elastic_ip_history(changes: pl.DataFrame) -> pl.DataFrame:
    """One row per public address: its calls in order (oldest first), who made them, first and last seen."""
    return (
        with_public_ip(changes).lazy()
        .drop_nulls("public_ip")
        .sort("event_time")
        .group_by("public_ip", maintain_order=True)
        .agg(history=pl.col("event_name").str.join(" → "), principals=pl.col("principal").unique().sort()
             .str.join(", "), calls=pl.len(), first_seen=pl.col("event_time").min(),
             last_seen=pl.col("event_time").max(), last_call=pl.col("event_name").last())
        .sort("last_seen", descending=True)
        .collect()
    )
