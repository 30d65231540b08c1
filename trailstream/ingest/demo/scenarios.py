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


_Step = tuple[str, dict, dict | None]
_ACL_ENTRIES = ((100, False, "0.0.0.0/0", (443, 443), "6"), (110, False, "0.0.0.0/0", (1024, 65535), "6"),
                (120, False, None, (22, 22), "6"), (100, True, "0.0.0.0/0", None, "-1"))  # None: the VPC's own range


@dataclass
class _Works:
    """One operator's EC2 calls made one after another, each a short pause after the last, until the demo's end."""

    b: _Builder
    s: Session
    net: Network
    person: Person | None
    t: int

    def run(self, plan: list[_Step], pause: tuple[int, int] = (2, 40)) -> bool:
        """Make the calls one after another; False once the demo's end is reached."""
        b = self.b
        for name, req, resp in plan:
            if self.t >= b.end:
                return False
            ec2_ok(b, self.t, self.s, self.net, name, req, resp)
            self.t = b.after(self.person, self.s.principal, self.t, *(pause if name != "DeleteNatGateway" else (60, 600)))
        return self.t < b.end

    def wait(self, low: int, high: int) -> None:
        self.t = self.b.after(self.person, self.s.principal, self.t, low, high)


@dataclass
class _Vpc:
    """The IDs of a network being built, which the NAT, peering and teardown steps name."""

    cidr: str
    vpc: str
    igw: str
    subnets: list[str] = field(default_factory=list)
    private_rt: str = ""
    acl: str = ""


def _networks(sc: _Scenarios, count: int) -> None:
    """A VPC built end to end (subnets, gateways, routes, ACL entries, NAT with an Elastic IP, peering), sometimes torn down."""
    b, rng = sc.b, sc.b.rng
    for index in range(count):
        net, s, person, t = sc.start(8 * DAY)  # room for the build, a weekend and a teardown before the end
        w = _Works(b, s, net, person, t)
        octet = 100 + (index * 7 + rng.randrange(7)) % 150
        v = _Vpc(f"10.{octet}.0.0/16", b.ids.resource("vpc"), b.ids.resource("igw"))
        steps = _vpc_steps(b, w.net, v, octet)
        steps += _routing_steps(b, w.net, v)
        if not w.run(steps):
            continue
        _, allocation, _ = allocate_address(b, w.t, w.s, w.net)
        nat = b.ids.resource("nat")
        w.wait(2, 30)
        if not w.run(_nat_steps(b, v, allocation, nat), (60, 300)):
            continue
        if rng.random() < 0.5:
            peering = b.ids.resource("pcx")
            w.wait(60, 3 * HOUR)
            w.run(_peering_steps(w.net, v, peering), (30, 600))
        if rng.random() < 0.35:  # an experiment torn down again
            w.wait(HOUR, 4 * DAY)
            w.run(_teardown_steps(v, nat, allocation), (2, 30))


def _vpc_steps(b: _Builder, net: Network, v: _Vpc, octet: int) -> list[_Step]:
    """CreateVpc, two subnets, and an internet gateway attached to the VPC."""
    region, account, cidr = net.region, net.account, v.cidr
    steps: list[_Step] = []
    steps.append(("CreateVpc", {"cidrBlock": cidr, "instanceTenancy": "default", "amazonProvidedIpv6CidrBlock": False},
                  {"vpc": {"vpcId": v.vpc, "state": "pending", "ownerId": account, "cidrBlock": cidr,
                           "cidrBlockAssociationSet": {"items": [{"cidrBlock": cidr, "associationId": b.ids.resource("vpc-cidr-assoc"),
                                                                 "cidrBlockState": {"state": "associated"}}]},
                           "ipv6CidrBlockAssociationSet": {}, "dhcpOptionsId": b.ids.resource("dopt"),
                           "instanceTenancy": "default", "tagSet": {}, "isDefault": False}}))
    v.subnets = [b.ids.resource("subnet") for _ in range(2)]
    for n, subnet in enumerate(v.subnets):
        block = f"10.{octet}.{n}.0/24"
        steps.append(("CreateSubnet", {"vpcId": v.vpc, "cidrBlock": block, "availabilityZone": region + "ab"[n]},
                      {"subnet": {"subnetId": subnet, "state": "pending", "vpcId": v.vpc, "cidrBlock": block,
                                  "availableIpAddressCount": 251, "availabilityZone": region + "ab"[n],
                                  "defaultForAz": False, "mapPublicIpOnLaunch": False, "ownerId": account,
                                  "subnetArn": f"arn:aws:ec2:{region}:{account}:subnet/{subnet}"}}))
    steps.append(("CreateInternetGateway", {}, {"internetGateway": {"internetGatewayId": v.igw, "ownerId": account,
                                                                     "attachmentSet": {}, "tagSet": {}}}))
    steps.append(("AttachInternetGateway", {"internetGatewayId": v.igw, "vpcId": v.vpc}, None))
    return steps


def _routing_steps(b: _Builder, net: Network, v: _Vpc) -> list[_Step]:
    """A public and a private route table, one per subnet, and a network ACL with its entries."""
    account, vpc = net.account, v.vpc
    steps: list[_Step] = []
    public_rt, v.private_rt = b.ids.resource("rtb"), b.ids.resource("rtb")
    for table in (public_rt, v.private_rt):
        steps.append(("CreateRouteTable", {"vpcId": vpc},
                      {"routeTable": {"routeTableId": table, "vpcId": vpc, "ownerId": account,
                                      "routeSet": {"items": [{"destinationCidrBlock": v.cidr, "gatewayId": "local",
                                                              "state": "active", "origin": "CreateRouteTable"}]},
                                      "associationSet": {}, "propagatingVgwSet": {}, "tagSet": {}}}))
    steps.append(("CreateRoute", {"routeTableId": public_rt, "destinationCidrBlock": "0.0.0.0/0", "gatewayId": v.igw}, None))
    for table, subnet in zip((public_rt, v.private_rt), v.subnets):
        steps.append(("AssociateRouteTable", {"routeTableId": table, "subnetId": subnet},
                      {"associationId": b.ids.resource("rtbassoc"), "associationState": {"state": "associated"}}))
    v.acl = b.ids.resource("acl")
    steps.append(("CreateNetworkAcl", {"vpcId": vpc},
                  {"networkAcl": {"networkAclId": v.acl, "vpcId": vpc, "isDefault": False, "ownerId": account,
                                  "entrySet": {}, "associationSet": {}, "tagSet": {}}}))
    for number, egress, block, ports, protocol in _ACL_ENTRIES:
        entry = {"networkAclId": v.acl, "ruleNumber": number, "egress": egress, "ruleAction": "allow",
                 "icmpTypeCode": {}, "portRange": {"from": ports[0], "to": ports[1]} if ports else {},
                 "aclProtocol": protocol, "cidrBlock": block or v.cidr}
        steps.append(("CreateNetworkAclEntry", entry, None))
    return steps


def _nat_steps(b: _Builder, v: _Vpc, allocation: str, nat: str) -> list[_Step]:
    """A NAT gateway on the first subnet with the Elastic IP, and the private table's default route through it."""
    return [("CreateNatGateway",
             {"CreateNatGatewayRequest": {"SubnetId": v.subnets[0], "AllocationId": allocation,
                                          "ClientToken": b.ids.uuid(), "ConnectivityType": "public"}},
             {"CreateNatGatewayResponse": {"natGateway": {
                 "natGatewayId": nat, "subnetId": v.subnets[0], "vpcId": v.vpc, "state": "pending",
                 "connectivityType": "public", "natGatewayAddressSet": {"item": {"allocationId": allocation}}}}}),
            ("CreateRoute", {"routeTableId": v.private_rt, "destinationCidrBlock": "0.0.0.0/0", "natGatewayId": nat}, None)]


def _peering_steps(net: Network, v: _Vpc, peering: str) -> list[_Step]:
    """Peering with the account's main VPC, requested and accepted."""
    account, region = net.account, net.region
    return [("CreateVpcPeeringConnection", {"vpcId": v.vpc, "peerVpcId": net.vpc, "peerOwnerId": account},
             {"vpcPeeringConnection": {
                 "vpcPeeringConnectionId": peering,
                 "requesterVpcInfo": {"ownerId": account, "vpcId": v.vpc, "cidrBlock": v.cidr, "region": region},
                 "accepterVpcInfo": {"ownerId": account, "vpcId": net.vpc, "region": region},
                 "status": {"code": "initiating-request", "message": f"Initiating Request to {account}"},
                 "tagSet": {}}}),
            ("AcceptVpcPeeringConnection", {"vpcPeeringConnectionId": peering},
             {"vpcPeeringConnection": {"vpcPeeringConnectionId": peering,
                                       "status": {"code": "provisioning", "message": "Provisioning"}}})]


def _teardown_steps(v: _Vpc, nat: str, allocation: str) -> list[_Step]:
    """Everything the build made, deleted in an order EC2 accepts."""
    return [("DeleteNatGateway", {"DeleteNatGatewayRequest": {"NatGatewayId": nat}},
             {"DeleteNatGatewayResponse": {"natGatewayId": nat}}),
            ("ReleaseAddress", {"allocationId": allocation}, None),
            ("DetachInternetGateway", {"internetGatewayId": v.igw, "vpcId": v.vpc}, None),
            ("DeleteInternetGateway", {"internetGatewayId": v.igw}, None),
            ("DeleteNetworkAclEntry", {"networkAclId": v.acl, "ruleNumber": 120, "egress": False}, None),
            ("DeleteNetworkAcl", {"networkAclId": v.acl}, None),
            *(("DeleteSubnet", {"subnetId": subnet}, None) for subnet in v.subnets),
            ("DeleteRouteTable", {"routeTableId": v.private_rt}, None),
            ("DeleteVpc", {"vpcId": v.vpc}, None)]


@dataclass
class _IamWork:
    """One operator's IAM calls in one account, each spaced from the last like slow, legitimate work."""

    b: _Builder
    s: Session
    person: Person | None
    account: str
    moment: int

    def step(self) -> int:
        """The next free moment for a privilege change by this operator."""
        b = self.b
        self.moment = b.slot(self.person, self.s.principal, self.moment + b.rng.randrange(30, 20 * MINUTE), "privilege",
                             _PRIVILEGE_GAP)
        return self.moment

    def act(self, name: str, req, resp=None) -> bool:
        """Make the call at the next step; False once the demo's end is reached."""
        t = self.step()
        if t >= self.b.end:
            return False
        iam(self.b, t, self.s, name, req, resp)
        return True


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
        w = _iam_operator(b, kind, account, moment)
        if kind == "onboard":
            user = f"{next(hires)}-{n}" if n >= len(NEW_HIRES) else next(hires)
            created = _onboard(w, user)
            if created is not None:
                onboarded.append((w.account, user, created))
        elif kind == "offboard":
            _offboard(w, user)
        else:
            {"rotate": _rotate, "role": _new_role, "policy": _new_policy, "group": _group_member}[kind](w)


def _iam_operator(b: _Builder, kind: str, account: str, moment: int) -> _IamWork:
    """Who does it: anyone rotating their own key, CI (or an admin's role) for roles, otherwise an admin."""
    rng = b.rng
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
    return _IamWork(b, s, person, account, moment)


def _onboard(w: _IamWork, user: str) -> int | None:
    """A new user with a password, a group, a read-only policy and MFA; returns when it was created."""
    b, rng, account = w.b, w.b.rng, w.account
    t = w.step()
    if t >= b.end:
        return None
    iam(b, t, w.s, "CreateUser", {"userName": user, "tags": [{"key": "team", "value": rng.choice(GROUPS)}]},
        create_user_response(account, user, t))
    (w.act("CreateLoginProfile", {"userName": user, "passwordResetRequired": True},
           {"loginProfile": {"userName": user, "createDate": _aws_date(w.moment), "passwordResetRequired": True}})
     and w.act("AddUserToGroup", {"groupName": rng.choice(GROUPS), "userName": user})
     and w.act("AttachUserPolicy", {"userName": user, "policyArn": rng.choice(READ_POLICIES)})
     and w.act("CreateVirtualMFADevice", {"virtualMFADeviceName": user, "path": "/"},
               {"virtualMFADevice": {"serialNumber": f"arn:aws:iam::{account}:mfa/{user}"}})
     and w.act("EnableMFADevice", {"userName": user, "serialNumber": f"arn:aws:iam::{account}:mfa/{user}",
                                   "authenticationCode1": "HIDDEN_DUE_TO_SECURITY_REASONS",
                                   "authenticationCode2": "HIDDEN_DUE_TO_SECURITY_REASONS"}))
    return t


def _offboard(w: _IamWork, user: str) -> None:
    """Everything onboarding gave the user, taken away, then the user deleted."""
    account = w.account
    (w.act("DetachUserPolicy", {"userName": user, "policyArn": READ_POLICIES[0]})
     and w.act("RemoveUserFromGroup", {"groupName": GROUPS[0], "userName": user})
     and w.act("DeleteLoginProfile", {"userName": user})
     and w.act("DeactivateMFADevice", {"userName": user, "serialNumber": f"arn:aws:iam::{account}:mfa/{user}"})
     and w.act("DeleteVirtualMFADevice", {"serialNumber": f"arn:aws:iam::{account}:mfa/{user}"})
     and w.act("DeleteUser", {"userName": user}))


def _rotate(w: _IamWork) -> None:
    """A person's own access key rotated: a new key, the old one deactivated, then deleted."""
    b = w.b
    owner = w.s.principal
    t = w.step()
    if t >= b.end:
        return
    create_access_key(b, t, w.s, owner, name_in_request=b.rng.random() < 0.5)
    old = b.ids.key("AKIA")
    (w.act("UpdateAccessKey", {"userName": owner, "accessKeyId": old, "status": "Inactive"})
     and w.act("DeleteAccessKey", {"userName": owner, "accessKeyId": old}))


def _new_role(w: _IamWork) -> None:
    """A Lambda role with a managed and an inline policy, its managed policy sometimes detached again."""
    b, rng, account = w.b, w.b.rng, w.account
    role = f"{rng.choice(('etl', 'api', 'reports', 'ingest', 'backup'))}-{rng.randrange(100)}-role"
    t = w.step()
    if t >= b.end:
        return
    iam(b, t, w.s, "CreateRole", {"roleName": role, "assumeRolePolicyDocument": _trust("lambda.amazonaws.com"),
                                  "maxSessionDuration": 3600},
        {"role": {"path": "/", "roleName": role, "roleId": role_id(role, account),
                  "arn": f"arn:aws:iam::{account}:role/{role}", "createDate": _aws_date(t)}})
    (w.act("AttachRolePolicy", {"roleName": role, "policyArn": rng.choice(READ_POLICIES)})
     and w.act("PutRolePolicy", {"roleName": role, "policyName": "logs",
                                 "policyDocument": _policy(["logs:CreateLogStream", "logs:PutLogEvents"])})
     and (rng.random() < 0.5 or w.act("DetachRolePolicy", {"roleName": role, "policyArn": READ_POLICIES[0]})))


def _new_policy(w: _IamWork) -> None:
    """A customer-managed policy, a second version made default, and an inline user policy."""
    b, rng, account = w.b, w.b.rng, w.account
    name = f"{rng.choice(('s3', 'kms', 'sqs', 'logs'))}-access-{rng.randrange(1000)}"
    arn = f"arn:aws:iam::{account}:policy/{name}"
    t = w.step()
    if t >= b.end:
        return
    iam(b, t, w.s, "CreatePolicy", {"policyName": name, "policyDocument": _policy(["s3:GetObject"], "arn:aws:s3:::acme-prod-assets/*")},
        {"policy": {"policyName": name, "policyId": "ANPA" + b.ids.key("")[:17], "arn": arn, "path": "/",
                    "defaultVersionId": "v1", "attachmentCount": 0, "isAttachable": True,
                    "createDate": _aws_date(t), "updateDate": _aws_date(t)}})
    (w.act("CreatePolicyVersion", {"policyArn": arn, "setAsDefault": True,
                                   "policyDocument": _policy(["s3:GetObject", "s3:ListBucket"], "*")},
           {"policyVersion": {"versionId": "v2", "isDefaultVersion": True, "createDate": _aws_date(w.moment)}})
     and w.act("PutUserPolicy", {"userName": rng.choice([p.name for p in PEOPLE.values() if p.account == account] or ["ops"]),
                                 "policyName": name, "policyDocument": _policy(["sqs:SendMessage"])}))


def _group_member(w: _IamWork) -> None:
    """Someone in the account added to a group."""
    rng = w.b.rng
    members = [p.name for p in PEOPLE.values() if p.account == w.account]
    if members:
        w.act("AddUserToGroup", {"groupName": rng.choice(GROUPS), "userName": rng.choice(members)})
