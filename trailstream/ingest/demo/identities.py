"""Identifiers, event times and the identities (IAM users, roles, root) that sign each record."""

from __future__ import annotations

import base64
import random
import time
from dataclasses import dataclass

from trailstream.ingest.demo.company import Person, access_key, role_id, user_id
from trailstream.timefmt import TIME_FORMAT, parse_iso_utc


_VARIANT = "89ab"
_SECONDS = tuple(f"{second:02d}Z" for second in range(60))


class _Ids:
    """Random identifiers in AWS's shapes, all drawn from one seeded generator."""

    __slots__ = ("bits",)

    def __init__(self, rng: random.Random):
        self.bits = rng.getrandbits

    def uuid(self) -> str:
        n = self.bits(128)
        h = "%032x" % n
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[n & 3]}{h[17:20]}-{h[20:]}"

    def resource(self, prefix: str) -> str:
        return "%s-%017x" % (prefix, self.bits(68))

    def key(self, prefix: str = "ASIA") -> str:
        return prefix + base64.b32encode(self.bits(80).to_bytes(10, "big")).decode()

    def s3_request(self) -> str:
        return "%016X" % self.bits(64)

    def token(self, size: int) -> str:
        return base64.urlsafe_b64encode(self.bits(size * 8).to_bytes(size, "big")).decode().rstrip("=")


class _Clock:
    """eventTime text for epoch seconds; formats each minute once."""

    __slots__ = ("minutes",)

    def __init__(self):
        self.minutes: dict[int, str] = {}

    def __call__(self, moment: int) -> str:
        minute, second = divmod(moment, 60)
        prefix = self.minutes.get(minute)
        if prefix is None:
            prefix = self.minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
        return prefix + _SECONDS[second]


def _iso(moment: int) -> str:
    return time.strftime(TIME_FORMAT, time.gmtime(moment))


def _aws_date(moment: int) -> str:
    """The 'Mar 3, 2026 10:12:45 AM' style IAM and STS responses use."""
    return time.strftime("%b %-d, %Y %-I:%M:%S %p", time.gmtime(moment))


def iam_user_identity(person: Person, key: str | None = None, session_start: int | None = None) -> dict:
    identity = {"type": "IAMUser", "principalId": user_id(person.name, person.account), "arn": person.arn,
                "accountId": person.account, "accessKeyId": key or access_key(person.name, person.account),
                "userName": person.name}
    if session_start is not None:  # a console session: temporary credentials
        identity["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {},
                                      "attributes": {"creationDate": _iso(session_start), "mfaAuthenticated": "true"}}
    return identity


def role_identity(account: str, role: str, session: str, created: int, key: str, mfa: bool = False,
                  invoked_by: str | None = None, path: str = "", ec2: bool = False) -> dict:
    rid = role_id(role, account)
    identity = {"type": "AssumedRole", "principalId": f"{rid}:{session}",
                "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}", "accountId": account,
                "accessKeyId": key,
                "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": rid,
                                                     "arn": f"arn:aws:iam::{account}:role/{path}{role}",
                                                     "accountId": account, "userName": role},
                                   "webIdFederationData": {},
                                   "attributes": {"creationDate": _iso(created), "mfaAuthenticated": str(mfa).lower()}}}
    if ec2:
        identity["sessionContext"]["ec2RoleDelivery"] = "2.0"
    if invoked_by:
        identity["invokedBy"] = invoked_by
    return identity


def root_identity(account: str, key: str = "", session_start: int | None = None) -> dict:
    identity = {"type": "Root", "principalId": account, "arn": f"arn:aws:iam::{account}:root", "accountId": account,
                "accessKeyId": key}
    if session_start is not None:
        identity["sessionContext"] = {"sessionIssuer": {}, "webIdFederationData": {},
                                      "attributes": {"creationDate": _iso(session_start), "mfaAuthenticated": "true"}}
    return identity


@dataclass(slots=True)
class Session:
    """Who calls, from where, with what: shared by every record of one sign-in or credential lifetime."""

    identity: dict
    account: str
    ip: str
    ua: str
    principal: str
    tls: bool = True
    console: bool = False
    extra: dict | None = None

    def via(self, source: str, invoked_by: bool = False) -> "Session":
        """The same caller seen through AWS itself ('AWS Internal') or a service acting on its behalf."""
        identity = {**self.identity, "invokedBy": source} if invoked_by else self.identity
        return Session(identity, self.account, source, source, self.principal, tls=False)



def _epoch(event_time: str) -> int:
    return int(parse_iso_utc(event_time).timestamp())
