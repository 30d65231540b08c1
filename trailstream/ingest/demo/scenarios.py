"""Use-case scenarios: instance lifecycles, Elastic IPs, security groups, networks and IAM work."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from trailstream.ingest.demo.background import _begin
from trailstream.ingest.demo.builder import _Builder, _policy, _trust, cli_session, github_session, role_session
from trailstream.ingest.demo.company import (
    ADMINS, DAY, GROUPS, HOUR, INSTANCE_TYPES, MINUTE, NETWORKS, NEW_HIRES, PEOPLE, PROD, READ_POLICIES, SECURITY,
    STAGING, Network, Person, role_id
)
from trailstream.ingest.demo.identities import Session, _aws_date, role_identity
from trailstream.ingest.demo.shapes import (
    allocate_address, associate_address, authorize, create_access_key, create_security_group, create_user_response,
    ec2_ok, iam, instance_action, permission, revoke, run_instances
)


@dataclass
class _Instance:
    net: Network
    instance_id: str
    launched: int
    gone: int  # terminated (or the end of the demo)
    interface: str = ""


@dataclass
class _Scenarios:
    """Actors allowed to change things in each account, and what exists (so later events name real resources)."""

    b: _Builder
    instances: dict[tuple[str, str], list[_Instance]] = field(default_factory=dict)

    def operator(self, account: str, moment: int) -> tuple[Session, Person | None]:
        """Someone who may change this account: a person, an admin's OpsAdmin role session, or a Terraform deploy."""
        b, rng = self.b, self.b.rng
        people = [p for p in PEOPLE.values() if p.account == account and p.name not in _RESERVED_OPERATORS]
        if (rng.random() < 0.35 or not people) and account != SECURITY:
            return github_session(b, account, moment), None
        if account != PROD and rng.random() < 0.4:
            admin = PEOPLE[rng.choice(ADMINS)]
            return role_session(b, account, "OpsAdmin", admin.name, moment, admin.ips[0], admin.cli, mfa=True), admin
        person = rng.choice(people or [PEOPLE["alice"]])
        return cli_session(person, rng.choice(person.ips)), person

    def start(self, room: int) -> tuple[Network, Session, Person | None, int]:
        """Where and by whom a scenario happens, and its first moment: at work, at least `room` before the end."""
        b = self.b
        net = _net_for(b.rng)
        moment = _begin(b, room)
        s, person = self.operator(net.account, moment)
        return net, s, person, b.work_time(person, moment, s.principal)


_IAM_KINDS = ("onboard", "rotate", "role", "offboard", "policy", "onboard", "rotate", "group")
_RESERVED_OPERATORS = {"jordan", "emma", "kenji", "svc-legacy", "build-bot"}
_PRIVILEGE_GAP = 6 * MINUTE


def _net_for(rng: random.Random) -> Network:
    nets = list(NETWORKS.values())
    return rng.choices(nets, (6, 3, 1, 3, 1, 1))[0]


def _instance_lifecycles(sc: _Scenarios, count: int) -> None:
    """RunInstances, then stop/start/modify/reboot/terminate of the same instance IDs by whoever operates them."""
    b, rng = sc.b, sc.b.rng
    span = b.end - b.start
    for _ in range(count):
        net = _net_for(rng)
        autoscaling = rng.random() < 0.2 and net.account != SECURITY
        moment = _begin(b, int(span * 0.05))
        if autoscaling:
            person = None
            identity = role_identity(net.account, "AWSServiceRoleForAutoScaling", "AutoScaling", moment - 30, b.ids.key(),
                                     invoked_by="autoscaling.amazonaws.com",
                                     path="aws-service-role/autoscaling.amazonaws.com/")
            s = Session(identity, net.account, "autoscaling.amazonaws.com", "autoscaling.amazonaws.com",
                        "AWSServiceRoleForAutoScaling/AutoScaling", tls=False)
        else:
            s, person = sc.operator(net.account, moment)
            moment = b.work_time(person, moment, s.principal)
        if moment >= b.end:
            continue
        _, launched = run_instances(b, moment, s, net, rng.choice((1, 1, 1, 2, 3)), rng.choice(INSTANCE_TYPES),
                                    rng.choice(("web", "worker", "batch", "api", "bastion", "etl")) + f"-{rng.randrange(100)}")
        for instance_id in launched:
            instance = _Instance(net, instance_id, moment, b.end)
            sc.instances.setdefault((net.account, net.region), []).append(instance)
            state, t = "running", moment
            for _ in range(rng.randrange(0, 6)):
                t += rng.randrange(20 * MINUTE, 3 * DAY)
                actor, actor_person = (s, person) if rng.random() < 0.6 or autoscaling else sc.operator(net.account, t)
                t = b.work_time(actor_person, t, actor.principal)
                if t >= b.end:
                    break
                if state == "running":
                    action = rng.choices(("StopInstances", "RebootInstances", "TerminateInstances", "ModifyInstanceAttribute"),
                                         (4, 2, 2, 1))[0]
                else:
                    action = rng.choices(("StartInstances", "ModifyInstanceAttribute", "TerminateInstances"), (5, 3, 1))[0]
                if action == "ModifyInstanceAttribute":
                    req = ({"instanceId": instance_id, "instanceType": {"value": rng.choice(INSTANCE_TYPES)}}
                           if state == "stopped" else {"instanceId": instance_id, "disableApiTermination": {"value": True}})
                    ec2_ok(b, t, actor, net, action, req)
                    continue
                instance_action(b, t, actor, net, action, [instance_id], previous=state)
                if action == "StopInstances":
                    state = "stopped"
                elif action == "StartInstances":
                    state = "running"
                elif action == "TerminateInstances":
                    instance.gone = t
                    break


def _elastic_ips(sc: _Scenarios, count: int) -> None:
    """AllocateAddress, AssociateAddress to a live instance (or an interface), DisassociateAddress, ReleaseAddress."""
    b, rng = sc.b, sc.b.rng
    for _ in range(count):
        net, s, person, moment = sc.start((b.end - b.start) // 10)
        if moment >= b.end:
            continue
        _, allocation, _ = allocate_address(b, moment, s, net)
        t = b.after(person, s.principal, moment, MINUTE, 2 * HOUR)
        live = [i for i in sc.instances.get((net.account, net.region), ()) if i.launched < t < i.gone - HOUR]
        if t >= b.end or rng.random() < 0.15:
            continue
        if live and rng.random() < 0.8:
            target = rng.choice(live)
            _, association = associate_address(b, t, s, net, allocation, instance=target.instance_id)
            until = target.gone
        else:
            _, association = associate_address(b, t, s, net, allocation, interface=b.ids.resource("eni"))
            until = b.end
        t = b.after(person, s.principal, t, HOUR, 5 * DAY)
        if t < min(until, b.end) and rng.random() < 0.6:
            ec2_ok(b, t, s, net, "DisassociateAddress", {"associationId": association})
            t = b.after(person, s.principal, t, MINUTE, DAY)
            if t < b.end and rng.random() < 0.7:
                ec2_ok(b, t, s, net, "ReleaseAddress", {"allocationId": allocation})


def _security_groups(sc: _Scenarios, count: int) -> None:
    """Groups created, rules added (web ports from anywhere, admin ports only from private or office ranges), revoked, deleted."""
    b, rng = sc.b, sc.b.rng
    for _ in range(count):
        net, s, person, moment = sc.start((b.end - b.start) // 20)

        def step(after: int) -> int:
            return b.slot(person, s.principal, after, "privilege", _PRIVILEGE_GAP)

        t = step(moment)
        if t >= b.end:
            continue
        kind = rng.choice(("web", "db", "admin", "internal"))
        _, group = create_security_group(b, t, s, net, f"{kind}-{rng.randrange(1000)}", f"{kind} tier")
        office = (person.ips[0] + "/32") if person else net.cidr
        rules = {
            "web": [permission("tcp", 443, cidrs=["0.0.0.0/0"], cidrs6=["::/0"], description="HTTPS"),
                    permission("tcp", 80, cidrs=["0.0.0.0/0"])],
            "db": [permission("tcp", rng.choice((5432, 3306)), groups=[net.groups[1]], account=net.account)],
            "admin": [permission("tcp", 22, cidrs=[office], description="office SSH"),
                      permission("tcp", 3389, cidrs=[net.cidr])],
            "internal": [permission("tcp", 8080, cidrs=[net.cidr]), permission("udp", 8125, cidrs=[net.cidr])],
        }[kind]
        added = []
        for rule in rules:
            t = step(t + rng.randrange(20, 10 * MINUTE))
            if t >= b.end:
                break
            authorize(b, t, s, net, group, [rule])
            added.append(rule)
        if rng.random() < 0.3:
            t = step(t + rng.randrange(MINUTE, HOUR))
            if t < b.end:
                authorize(b, t, s, net, group, [permission("tcp", 443, cidrs=[net.cidr])], egress=True)
        if added and rng.random() < 0.4:
            t = step(t + rng.randrange(HOUR, 4 * DAY))
            if t < b.end:
                revoke(b, t, s, net, group, [added[0]])
        if rng.random() < 0.3:
            t = step(t + rng.randrange(HOUR, 5 * DAY))
            if t < b.end:
                ec2_ok(b, t, s, net, "DeleteSecurityGroup", {"groupId": group}, {"_return": True, "groupId": group})


def _networks(sc: _Scenarios, count: int) -> None:
    """A VPC built end to end (subnets, gateways, routes, ACL entries, NAT with an Elastic IP, peering), sometimes torn down."""
    b, rng = sc.b, sc.b.rng
    for index in range(count):
        base, s, person, t = sc.start(8 * DAY)  # room for the build, a weekend and a teardown before the end

        def run(plan: list[tuple[str, dict, dict | None]], pause: tuple[int, int] = (2, 40)) -> bool:
            """Make the calls one after another; False once the demo's end is reached."""
            nonlocal t
            for name, req, resp in plan:
                if t >= b.end:
                    return False
                ec2_ok(b, t, s, base, name, req, resp)
                t = b.after(person, s.principal, t, *(pause if name != "DeleteNatGateway" else (60, 600)))
            return t < b.end

        region, account = base.region, base.account
        octet = 100 + (index * 7 + rng.randrange(7)) % 150
        cidr = f"10.{octet}.0.0/16"
        vpc, igw = b.ids.resource("vpc"), b.ids.resource("igw")
        steps: list[tuple[str, dict, dict | None]] = []
        steps.append(("CreateVpc", {"cidrBlock": cidr, "instanceTenancy": "default", "amazonProvidedIpv6CidrBlock": False},
                      {"vpc": {"vpcId": vpc, "state": "pending", "ownerId": account, "cidrBlock": cidr,
                               "cidrBlockAssociationSet": {"items": [{"cidrBlock": cidr, "associationId": b.ids.resource("vpc-cidr-assoc"),
                                                                     "cidrBlockState": {"state": "associated"}}]},
                               "ipv6CidrBlockAssociationSet": {}, "dhcpOptionsId": b.ids.resource("dopt"),
                               "instanceTenancy": "default", "tagSet": {}, "isDefault": False}}))
        subnets = [b.ids.resource("subnet") for _ in range(2)]
        for n, subnet in enumerate(subnets):
            block = f"10.{octet}.{n}.0/24"
            steps.append(("CreateSubnet", {"vpcId": vpc, "cidrBlock": block, "availabilityZone": region + "ab"[n]},
                          {"subnet": {"subnetId": subnet, "state": "pending", "vpcId": vpc, "cidrBlock": block,
                                      "availableIpAddressCount": 251, "availabilityZone": region + "ab"[n],
                                      "defaultForAz": False, "mapPublicIpOnLaunch": False, "ownerId": account,
                                      "subnetArn": f"arn:aws:ec2:{region}:{account}:subnet/{subnet}"}}))
        steps.append(("CreateInternetGateway", {}, {"internetGateway": {"internetGatewayId": igw, "ownerId": account,
                                                                         "attachmentSet": {}, "tagSet": {}}}))
        steps.append(("AttachInternetGateway", {"internetGatewayId": igw, "vpcId": vpc}, None))
        public_rt, private_rt = b.ids.resource("rtb"), b.ids.resource("rtb")
        for table in (public_rt, private_rt):
            steps.append(("CreateRouteTable", {"vpcId": vpc},
                          {"routeTable": {"routeTableId": table, "vpcId": vpc, "ownerId": account,
                                          "routeSet": {"items": [{"destinationCidrBlock": cidr, "gatewayId": "local",
                                                                  "state": "active", "origin": "CreateRouteTable"}]},
                                          "associationSet": {}, "propagatingVgwSet": {}, "tagSet": {}}}))
        steps.append(("CreateRoute", {"routeTableId": public_rt, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": igw}, None))
        for table, subnet in zip((public_rt, private_rt), subnets):
            steps.append(("AssociateRouteTable", {"routeTableId": table, "subnetId": subnet},
                          {"associationId": b.ids.resource("rtbassoc"), "associationState": {"state": "associated"}}))
        acl = b.ids.resource("acl")
        steps.append(("CreateNetworkAcl", {"vpcId": vpc},
                      {"networkAcl": {"networkAclId": acl, "vpcId": vpc, "isDefault": False, "ownerId": account,
                                      "entrySet": {}, "associationSet": {}, "tagSet": {}}}))
        for number, egress, block, ports, protocol in ((100, False, "0.0.0.0/0", (443, 443), "6"),
                                                      (110, False, "0.0.0.0/0", (1024, 65535), "6"),
                                                      (120, False, cidr, (22, 22), "6"),
                                                      (100, True, "0.0.0.0/0", None, "-1")):
            entry = {"networkAclId": acl, "ruleNumber": number, "egress": egress, "ruleAction": "allow",
                     "icmpTypeCode": {}, "portRange": {"from": ports[0], "to": ports[1]} if ports else {},
                     "aclProtocol": protocol, "cidrBlock": block}
            steps.append(("CreateNetworkAclEntry", entry, None))
        if not run(steps):
            continue
        _, allocation, _ = allocate_address(b, t, s, base)
        nat = b.ids.resource("nat")
        t = b.after(person, s.principal, t, 2, 30)
        gateway = [("CreateNatGateway",
                    {"CreateNatGatewayRequest": {"SubnetId": subnets[0], "AllocationId": allocation,
                                                 "ClientToken": b.ids.uuid(), "ConnectivityType": "public"}},
                    {"CreateNatGatewayResponse": {"natGateway": {
                        "natGatewayId": nat, "subnetId": subnets[0], "vpcId": vpc, "state": "pending",
                        "connectivityType": "public", "natGatewayAddressSet": {"item": {"allocationId": allocation}}}}}),
                   ("CreateRoute", {"routeTableId": private_rt, "destinationCidrBlock": "0.0.0.0/0", "natGatewayId": nat}, None)]
        if not run(gateway, (60, 300)):
            continue
        if rng.random() < 0.5:
            peering = b.ids.resource("pcx")
            t = b.after(person, s.principal, t, 60, 3 * HOUR)
            run([("CreateVpcPeeringConnection", {"vpcId": vpc, "peerVpcId": base.vpc, "peerOwnerId": account},
                  {"vpcPeeringConnection": {
                      "vpcPeeringConnectionId": peering,
                      "requesterVpcInfo": {"ownerId": account, "vpcId": vpc, "cidrBlock": cidr, "region": region},
                      "accepterVpcInfo": {"ownerId": account, "vpcId": base.vpc, "region": region},
                      "status": {"code": "initiating-request", "message": f"Initiating Request to {account}"},
                      "tagSet": {}}}),
                 ("AcceptVpcPeeringConnection", {"vpcPeeringConnectionId": peering},
                  {"vpcPeeringConnection": {"vpcPeeringConnectionId": peering,
                                            "status": {"code": "provisioning", "message": "Provisioning"}}})],
                (30, 600))
        if rng.random() < 0.35:  # an experiment torn down again
            t = b.after(person, s.principal, t, HOUR, 4 * DAY)
            teardown = [("DeleteNatGateway", {"DeleteNatGatewayRequest": {"NatGatewayId": nat}},
                         {"DeleteNatGatewayResponse": {"natGatewayId": nat}}),
                        ("ReleaseAddress", {"allocationId": allocation}, None),
                        ("DetachInternetGateway", {"internetGatewayId": igw, "vpcId": vpc}, None),
                        ("DeleteInternetGateway", {"internetGatewayId": igw}, None),
                        ("DeleteNetworkAclEntry", {"networkAclId": acl, "ruleNumber": 120, "egress": False}, None),
                        ("DeleteNetworkAcl", {"networkAclId": acl}, None),
                        *(("DeleteSubnet", {"subnetId": subnet}, None) for subnet in subnets),
                        ("DeleteRouteTable", {"routeTableId": private_rt}, None),
                        ("DeleteVpc", {"vpcId": vpc}, None)]
            run(teardown, (2, 30))


def _iam_changes(sc: _Scenarios, count: int) -> None:
    """Slow, legitimate IAM work: onboarding and offboarding, key rotation, roles and policies."""
    b, rng = sc.b, sc.b.rng
    hires = iter(NEW_HIRES * (count // len(NEW_HIRES) + 1))
    onboarded: list[tuple[str, str, int]] = []
    for n in range(count):
        account = rng.choices((PROD, STAGING, SECURITY), (6, 3, 1))[0]
        moment = _begin(b, (b.end - b.start) // 20)
        kind = _IAM_KINDS[n % len(_IAM_KINDS)]
        if kind == "offboard":
            if not onboarded:
                continue
            account, user, created = onboarded.pop(0)
            moment = created + rng.randrange(HOUR, 5 * DAY)
        if kind == "rotate":
            person = rng.choice([p for p in PEOPLE.values() if p.name not in _RESERVED_OPERATORS])
            s = cli_session(person)
            account = person.account
        elif kind == "role":
            person = None
            s = github_session(b, account, moment) if account != SECURITY else role_session(
                b, account, "OpsAdmin", "liam", moment, PEOPLE["liam"].ips[0], PEOPLE["liam"].cli, mfa=True)
        elif account == PROD:
            person = PEOPLE[rng.choice(ADMINS)]
            s = cli_session(person)
        else:
            person = PEOPLE[rng.choice(ADMINS)]
            s = role_session(b, account, "OpsAdmin", person.name, moment, person.ips[0], person.cli, mfa=True)

        def step() -> int:
            nonlocal moment
            moment = b.slot(person, s.principal, moment + rng.randrange(30, 20 * MINUTE), "privilege", _PRIVILEGE_GAP)
            return moment

        def act(name: str, req, resp=None) -> bool:
            t = step()
            if t >= b.end:
                return False
            iam(b, t, s, name, req, resp)
            return True

        if kind == "onboard":
            user = f"{next(hires)}-{n}" if n >= len(NEW_HIRES) else next(hires)
            t = step()
            if t >= b.end:
                continue
            iam(b, t, s, "CreateUser", {"userName": user, "tags": [{"key": "team", "value": rng.choice(GROUPS)}]},
                create_user_response(account, user, t))
            onboarded.append((account, user, t))
            (act("CreateLoginProfile", {"userName": user, "passwordResetRequired": True},
                 {"loginProfile": {"userName": user, "createDate": _aws_date(moment), "passwordResetRequired": True}})
             and act("AddUserToGroup", {"groupName": rng.choice(GROUPS), "userName": user})
             and act("AttachUserPolicy", {"userName": user, "policyArn": rng.choice(READ_POLICIES)})
             and act("CreateVirtualMFADevice", {"virtualMFADeviceName": user, "path": "/"},
                     {"virtualMFADevice": {"serialNumber": f"arn:aws:iam::{account}:mfa/{user}"}})
             and act("EnableMFADevice", {"userName": user, "serialNumber": f"arn:aws:iam::{account}:mfa/{user}",
                                         "authenticationCode1": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                         "authenticationCode2": "HIDDEN_DUE_TO_SECURITY_REASONS"}))
        elif kind == "offboard":
            (act("DetachUserPolicy", {"userName": user, "policyArn": READ_POLICIES[0]})
             and act("RemoveUserFromGroup", {"groupName": GROUPS[0], "userName": user})
             and act("DeleteLoginProfile", {"userName": user})
             and act("DeactivateMFADevice", {"userName": user, "serialNumber": f"arn:aws:iam::{account}:mfa/{user}"})
             and act("DeleteVirtualMFADevice", {"serialNumber": f"arn:aws:iam::{account}:mfa/{user}"})
             and act("DeleteUser", {"userName": user}))
        elif kind == "rotate":
            owner = s.principal
            t = step()
            if t >= b.end:
                continue
            create_access_key(b, t, s, owner, name_in_request=rng.random() < 0.5)
            old = b.ids.key("AKIA")
            (act("UpdateAccessKey", {"userName": owner, "accessKeyId": old, "status": "Inactive"})
             and act("DeleteAccessKey", {"userName": owner, "accessKeyId": old}))
        elif kind == "role":
            role = f"{rng.choice(('etl', 'api', 'reports', 'ingest', 'backup'))}-{rng.randrange(100)}-role"
            t = step()
            if t >= b.end:
                continue
            iam(b, t, s, "CreateRole", {"roleName": role, "assumeRolePolicyDocument": _trust("lambda.amazonaws.com"),
                                        "maxSessionDuration": 3600},
                {"role": {"path": "/", "roleName": role, "roleId": role_id(role, account),
                          "arn": f"arn:aws:iam::{account}:role/{role}", "createDate": _aws_date(t)}})
            (act("AttachRolePolicy", {"roleName": role, "policyArn": rng.choice(READ_POLICIES)})
             and act("PutRolePolicy", {"roleName": role, "policyName": "logs",
                                       "policyDocument": _policy(["logs:CreateLogStream", "logs:PutLogEvents"])})
             and (rng.random() < 0.5 or act("DetachRolePolicy", {"roleName": role, "policyArn": READ_POLICIES[0]})))
        elif kind == "policy":
            name = f"{rng.choice(('s3', 'kms', 'sqs', 'logs'))}-access-{rng.randrange(1000)}"
            arn = f"arn:aws:iam::{account}:policy/{name}"
            t = step()
            if t >= b.end:
                continue
            iam(b, t, s, "CreatePolicy", {"policyName": name, "policyDocument": _policy(["s3:GetObject"], "arn:aws:s3:::acme-prod-assets/*")},
                {"policy": {"policyName": name, "policyId": "ANPA" + b.ids.key("")[:17], "arn": arn, "path": "/",
                            "defaultVersionId": "v1", "attachmentCount": 0, "isAttachable": True,
                            "createDate": _aws_date(t), "updateDate": _aws_date(t)}})
            (act("CreatePolicyVersion", {"policyArn": arn, "setAsDefault": True,
                                         "policyDocument": _policy(["s3:GetObject", "s3:ListBucket"], "*")},
                 {"policyVersion": {"versionId": "v2", "isDefaultVersion": True, "createDate": _aws_date(moment)}})
             and act("PutUserPolicy", {"userName": rng.choice([p.name for p in PEOPLE.values() if p.account == account] or ["ops"]),
                                       "policyName": name, "policyDocument": _policy(["sqs:SendMessage"])}))
        else:
            members = [p.name for p in PEOPLE.values() if p.account == account]
            if members:
                act("AddUserToGroup", {"groupName": rng.choice(GROUPS), "userName": rng.choice(members)})
