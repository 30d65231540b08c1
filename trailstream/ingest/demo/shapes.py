"""EC2 and IAM record shapes shared by the scenarios and the planted cases."""

from __future__ import annotations

from trailstream.ingest.demo.builder import _Builder
from trailstream.ingest.demo.company import GLOBAL_REGION, IMAGES, Network, user_id
from trailstream.ingest.demo.identities import Session, _aws_date


def _items(key: str, values) -> dict:
    return {"items": [{key: value} for value in values]}


def permission(protocol: str, port: int | None, cidrs=(), cidrs6=(), groups=(), account: str = "",
               description: str = "") -> dict:
    """One ipPermissions item as AuthorizeSecurityGroupIngress/Egress requests carry it."""
    item = {"ipProtocol": protocol}
    if port is not None:
        item["fromPort"], item["toPort"] = port, port
    item["groups"] = {"items": [{"groupId": g, "userId": account} for g in groups]} if groups else {}
    ranges = [{"cidrIp": c, **({"description": description} if description else {})} for c in cidrs]
    item["ipRanges"] = {"items": ranges} if ranges else {}
    item["ipv6Ranges"] = {"items": [{"cidrIpv6": c} for c in cidrs6]} if cidrs6 else {}
    item["prefixListIds"] = {}
    return item


def _rule_set(b: _Builder, account: str, group: str, items: list[dict], egress: bool) -> dict:
    rules = []
    for item in items:
        base = {"groupOwnerId": account, "groupId": group, "securityGroupRuleId": b.ids.resource("sgr"),
                "isEgress": egress, "ipProtocol": item["ipProtocol"],
                "fromPort": item.get("fromPort", -1), "toPort": item.get("toPort", -1)}
        for entry in item["ipRanges"].get("items", ()):
            rules.append({**base, "cidrIpv4": entry["cidrIp"]})
        for entry in item["ipv6Ranges"].get("items", ()):
            rules.append({**base, "securityGroupRuleId": b.ids.resource("sgr"), "cidrIpv6": entry["cidrIpv6"]})
        for entry in item["groups"].get("items", ()):
            rules.append({**base, "securityGroupRuleId": b.ids.resource("sgr"),
                          "referencedGroupInfo": {"groupId": entry["groupId"], "userId": account}})
    return {"items": rules}


def create_security_group(b: _Builder, moment: int, s: Session, net: Network, name: str, description: str,
                          tags: list[dict] | None = None) -> tuple[dict, str]:
    group = b.ids.resource("sg")
    req = {"groupName": name, "groupDescription": description, "vpcId": net.vpc}
    if tags:
        req["tagSpecificationSet"] = {"items": [{"resourceType": "security-group", "tags": tags}]}
    resp = {"_return": True, "groupId": group,
            "securityGroupArn": f"arn:aws:ec2:{net.region}:{net.account}:security-group/{group}"}
    return b.call(moment, s, net.region, "ec2.amazonaws.com", "CreateSecurityGroup", False, req, resp), group


def authorize(b: _Builder, moment: int, s: Session, net: Network, group: str, items: list[dict],
              egress: bool = False) -> dict:
    name = "AuthorizeSecurityGroupEgress" if egress else "AuthorizeSecurityGroupIngress"
    resp = {"_return": True, "securityGroupRuleSet": _rule_set(b, net.account, group, items, egress)}
    return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False,
                  {"groupId": group, "ipPermissions": {"items": items}}, resp)


def revoke(b: _Builder, moment: int, s: Session, net: Network, group: str, items: list[dict], egress: bool = False):
    name = "RevokeSecurityGroupEgress" if egress else "RevokeSecurityGroupIngress"
    return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False,
                  {"groupId": group, "ipPermissions": {"items": items}}, {"_return": True})


def _private_ip(b: _Builder, net: Network) -> str:
    second = net.cidr.split(".")[1]
    return f"10.{second}.{b.rng.randrange(1, 4)}.{b.rng.randrange(4, 250)}"


def run_instances(b: _Builder, moment: int, s: Session, net: Network, count: int, instance_type: str,
                  name: str, error: tuple[str, str] | None = None) -> tuple[dict, list[str]]:
    rng, ids = b.rng, b.ids
    subnet, group, image = rng.choice(net.subnets), net.groups[1], rng.choice(IMAGES)
    zone = net.region + "abc"[net.subnets.index(subnet)]
    tags = [{"key": "Name", "value": name}]
    req = {"instancesSet": {"items": [{"imageId": image, "minCount": count, "maxCount": count}]},
           "instanceType": instance_type, "blockDeviceMapping": {}, "monitoring": {"enabled": False},
           "disableApiTermination": False, "disableApiStop": False, "clientToken": ids.uuid(), "subnetId": subnet,
           "groupSet": _items("groupId", [group]),
           "tagSpecificationSet": {"items": [{"resourceType": "instance", "tags": tags}]},
           "metadataOptions": {"httpTokens": "required", "httpPutResponseHopLimit": 2}}
    if error is not None:
        return b.call(moment, s, net.region, "ec2.amazonaws.com", "RunInstances", False, req, None, error=error), []
    launched, items = [], []
    for index in range(count):
        instance, private_ip = ids.resource("i"), _private_ip(b, net)
        launched.append(instance)
        items.append({
            "instanceId": instance, "imageId": image, "instanceState": {"code": 0, "name": "pending"},
            "privateDnsName": f"ip-{private_ip.replace('.', '-')}.ec2.internal", "amiLaunchIndex": index,
            "productCodes": {}, "instanceType": instance_type, "launchTime": moment * 1000,
            "placement": {"availabilityZone": zone, "tenancy": "default"}, "monitoring": {"state": "disabled"},
            "subnetId": subnet, "vpcId": net.vpc, "privateIpAddress": private_ip,
            "stateReason": {"code": "pending", "message": "pending"}, "architecture": "x86_64",
            "rootDeviceType": "ebs", "rootDeviceName": "/dev/xvda", "blockDeviceMapping": {},
            "virtualizationType": "hvm", "hypervisor": "xen", "groupSet": _items("groupId", [group]),
            "networkInterfaceSet": {"items": [{
                "networkInterfaceId": ids.resource("eni"), "subnetId": subnet, "vpcId": net.vpc,
                "ownerId": net.account, "status": "in-use", "privateIpAddress": private_ip, "sourceDestCheck": True,
                "interfaceType": "interface", "groupSet": _items("groupId", [group]),
                "attachment": {"attachmentId": ids.resource("eni-attach"), "deviceIndex": 0, "networkCardIndex": 0,
                               "status": "attaching", "attachTime": moment * 1000, "deleteOnTermination": True},
                "ipv6AddressesSet": {}, "tagSet": {}}]},
            "ebsOptimized": False, "enaSupport": True, "sourceDestCheck": True,
            "metadataOptions": {"state": "pending", "httpTokens": "required", "httpPutResponseHopLimit": 2,
                                "httpEndpoint": "enabled"},
            "tagSet": {"items": tags}})
    resp = {"reservationId": ids.resource("r"), "ownerId": net.account, "groupSet": {},
            "instancesSet": {"items": items}}
    return b.call(moment, s, net.region, "ec2.amazonaws.com", "RunInstances", False, req, resp), launched


_STATES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64, "stopped": 80}
_TRANSITIONS = {"StopInstances": ("running", "stopping"), "StartInstances": ("stopped", "pending"),
                "TerminateInstances": ("running", "shutting-down")}


def instance_action(b: _Builder, moment: int, s: Session, net: Network, name: str, instances: list[str],
                    previous: str | None = None) -> dict:
    """Start/Stop/Reboot/TerminateInstances with the request and state-change response EC2 logs."""
    req = {"instancesSet": _items("instanceId", instances)}
    if name == "RebootInstances":
        return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False, req, {"_return": True})
    before, after = _TRANSITIONS[name]
    before = previous or before
    if name == "StopInstances":
        req["force"] = False
    items = [{"instanceId": i, "currentState": {"code": _STATES[after], "name": after},
              "previousState": {"code": _STATES[before], "name": before}} for i in instances]
    return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False, req, {"instancesSet": {"items": items}})


def allocate_address(b: _Builder, moment: int, s: Session, net: Network) -> tuple[dict, str, str]:
    allocation = b.ids.resource("eipalloc")
    public_ip = f"{b.rng.choice((3, 18, 34, 44, 52, 54))}.{b.rng.randrange(1, 255)}.{b.rng.randrange(256)}.{b.rng.randrange(1, 255)}"
    resp = {"publicIp": public_ip, "domain": "vpc", "allocationId": allocation, "publicIpv4Pool": "amazon",
            "networkBorderGroup": net.region}
    return (b.call(moment, s, net.region, "ec2.amazonaws.com", "AllocateAddress", False, {"domain": "vpc"}, resp),
            allocation, public_ip)


def associate_address(b: _Builder, moment: int, s: Session, net: Network, allocation: str, instance: str | None = None,
                      interface: str | None = None) -> tuple[dict, str]:
    association = b.ids.resource("eipassoc")
    req = {"allocationId": allocation, "allowReassociation": False}
    if instance:
        req["instanceId"] = instance
    else:
        req["networkInterfaceId"] = interface
    record = b.call(moment, s, net.region, "ec2.amazonaws.com", "AssociateAddress", False, req,
                    {"_return": True, "associationId": association})
    return record, association


def ec2_ok(b: _Builder, moment: int, s: Session, net: Network, name: str, req: dict, resp: dict | None = None) -> dict:
    return b.call(moment, s, net.region, "ec2.amazonaws.com", name, False, req, resp if resp is not None else {"_return": True})


def iam(b: _Builder, moment: int, s: Session, name: str, req: dict | None, resp: dict | None = None,
        error: tuple[str, str] | None = None) -> dict:
    read_only = name.startswith(("Get", "List"))
    return b.call(moment, s, GLOBAL_REGION, "iam.amazonaws.com", name, read_only, req, resp, error=error)


def create_user_response(account: str, name: str, moment: int) -> dict:
    return {"user": {"path": "/", "userName": name, "userId": user_id(name, account),
                     "arn": f"arn:aws:iam::{account}:user/{name}", "createDate": _aws_date(moment)}}


def create_access_key(b: _Builder, moment: int, s: Session, owner: str, name_in_request: bool = True) -> dict:
    key = b.ids.key("AKIA")
    resp = {"accessKey": {"userName": owner, "accessKeyId": key, "status": "Active", "createDate": _aws_date(moment)}}
    return iam(b, moment, s, "CreateAccessKey", {"userName": owner} if name_in_request else None, resp)
