"""The record builder every scenario writes through, and the sessions of who calls."""

from __future__ import annotations

import json
import random
from bisect import bisect_left

from trailstream.ingest.demo.company import DAY, GITHUB_IPS, GLOBAL_REGION, HOUR, TERRAFORM_UA, Person
from trailstream.ingest.demo.identities import Session, _Clock, _Ids, iam_user_identity, role_identity


_SIGNIN_TLS = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
               "clientProvidedHostHeader": "signin.aws.amazon.com"}
_LOGIN_OK = {"ConsoleLogin": "Success"}
_LOGIN_FAILED = {"ConsoleLogin": "Failure"}
_GLOBAL_HOSTS = {"iam": "iam.amazonaws.com", "cloudfront": "cloudfront.amazonaws.com"}
_S3_AUTH = {"SignatureVersion": "SigV4", "CipherSuite": "TLS_AES_128_GCM_SHA256", "bytesTransferredIn": 0,
            "AuthenticationMethod": "AuthHeader"}
_S3_PUT_RESPONSE = {"x-amz-server-side-encryption": "aws:kms", "x-amz-server-side-encryption-bucket-key-enabled": "true"}


class _Builder:
    """Appends CloudTrail records to `out`; everything random comes from `rng` so output is reproducible."""

    def __init__(self, rng: random.Random, start: int, end: int):
        self.rng = rng
        self.ids = _Ids(rng)
        self.clock = _Clock()
        self.start, self.end = start, end
        self.out: list[dict] = []
        self._tls: dict[tuple[str, str], dict] = {}
        self._busy: dict[tuple[str, str], list[int]] = {}
        self.blackouts: dict[str, list[tuple[int, int]]] = {}

    def tls(self, source: str, region: str) -> dict:
        found = self._tls.get((source, region))
        if found is None:
            service = source.split(".", 1)[0]
            host = _GLOBAL_HOSTS.get(service) or f"{service}.{region}.amazonaws.com"
            found = self._tls[(source, region)] = {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                                                   "clientProvidedHostHeader": host}
        return found

    def call(self, moment: int, s: Session, region: str, source: str, name: str, read_only: bool, req=None, resp=None,
             error: tuple[str, str] | None = None, resources: list | None = None, additional: dict | None = None,
             event_type: str = "AwsApiCall", version: str = "1.09", shared: str | None = None) -> dict:
        ids = self.ids
        request_id = ids.uuid()
        if resp is not None and source == "ec2.amazonaws.com":
            resp = {"requestId": request_id, **resp}
        record = {"eventVersion": version, "userIdentity": s.identity, "eventTime": self.clock(moment),
                  "eventSource": source, "eventName": name, "awsRegion": region, "sourceIPAddress": s.ip,
                  "userAgent": s.ua}
        if error is not None:
            record["errorCode"], record["errorMessage"] = error
        record["requestParameters"] = req
        record["responseElements"] = resp
        if additional is not None:
            record["additionalEventData"] = additional
        record["requestID"] = request_id
        record["eventID"] = ids.uuid()
        record["readOnly"] = read_only
        if resources is not None:
            record["resources"] = resources
        record["eventType"] = event_type
        record["managementEvent"] = True
        record["recipientAccountId"] = s.account
        if shared is not None:
            record["sharedEventID"] = shared
        if s.extra:
            record.update(s.extra)
        record["eventCategory"] = "Management"
        if s.tls:
            record["tlsDetails"] = self._tls.get((source, region)) or self.tls(source, region)
        if s.console:
            record["sessionCredentialFromConsole"] = "true"
        self.out.append(record)
        return record

    def s3_object(self, moment: int, s: Session, region: str, name: str, bucket: str, key: str, size: int) -> dict:
        """An S3 data event (GetObject, PutObject, ...) with the resources S3 reports."""
        ids = self.ids
        read_only = name in ("GetObject", "HeadObject")
        transfer = {**_S3_AUTH, "x-amz-id-2": ids.token(54)}
        if name == "PutObject":
            transfer["bytesTransferredIn"] = size
        transfer["bytesTransferredOut"] = size if read_only else 0
        record = {"eventVersion": "1.10", "userIdentity": s.identity, "eventTime": self.clock(moment),
                  "eventSource": "s3.amazonaws.com", "eventName": name, "awsRegion": region, "sourceIPAddress": s.ip,
                  "userAgent": s.ua,
                  "requestParameters": {"bucketName": bucket, "Host": f"{bucket}.s3.{region}.amazonaws.com", "key": key},
                  "responseElements": _S3_PUT_RESPONSE if name == "PutObject" else None,
                  "additionalEventData": transfer, "requestID": ids.s3_request(), "eventID": ids.uuid(),
                  "readOnly": read_only,
                  "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                                {"accountId": s.account, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}"}],
                  "eventType": "AwsApiCall", "managementEvent": False, "recipientAccountId": s.account}
        if s.extra:
            record.update(s.extra)
        record["eventCategory"] = "Data"
        if s.tls:
            record["tlsDetails"] = self.tls(f"{bucket}.s3", region)
        self.out.append(record)
        return record

    def sign_in(self, moment: int, identity: dict, account: str, ip: str, ua: str, success: bool = True,
                mfa: bool = True, mfa_device: str | None = None) -> dict:
        record = {"eventVersion": "1.09", "userIdentity": identity, "eventTime": self.clock(moment),
                  "eventSource": "signin.amazonaws.com", "eventName": "ConsoleLogin", "awsRegion": GLOBAL_REGION,
                  "sourceIPAddress": ip, "userAgent": ua}
        if not success:
            record["errorMessage"] = "Failed authentication"
        record["requestParameters"] = None
        record["responseElements"] = _LOGIN_OK if success else _LOGIN_FAILED
        additional = {"LoginTo": "https://console.aws.amazon.com/console/home?hashArgs=%23&isauthcode=true&state=hashArgsFromTB_us-east-1",
                      "MobileVersion": "No"}
        if mfa and success and mfa_device:
            additional["MFAIdentifier"] = mfa_device
        additional["MFAUsed"] = "Yes" if mfa else "No"
        record["additionalEventData"] = additional
        record["eventID"] = self.ids.uuid()
        record["readOnly"] = False
        record["eventType"] = "AwsConsoleSignIn"
        record["managementEvent"] = True
        record["recipientAccountId"] = account
        record["eventCategory"] = "Management"
        record["tlsDetails"] = _SIGNIN_TLS
        self.out.append(record)
        return record

    # -- when things may happen --

    def in_blackout(self, principal: str, moment: int, until: int | None = None) -> bool:
        until = moment if until is None else until
        return any(a <= until and moment <= b for a, b in self.blackouts.get(principal, ()))

    def work_time(self, person: Person | None, after: int, principal: str = "") -> int:
        """The first moment at or after `after` when this person is at work (machines: any time) and not blacked out."""
        moment = after
        for _ in range(60):
            if person is not None:
                local = moment + person.utc_offset * HOUR
                day, second = divmod(local, DAY)
                if (day + 3) % 7 >= 5:  # Saturday or Sunday: Monday morning
                    moment += (7 - (day + 3) % 7) * DAY - second + 8 * HOUR + self.rng.randrange(2 * HOUR)
                    continue
                if second < 8 * HOUR:
                    moment += 8 * HOUR - second + self.rng.randrange(HOUR)
                    continue
                if second >= 19 * HOUR:
                    moment += DAY - second + 8 * HOUR + self.rng.randrange(HOUR)
                    continue
            blocking = [b for a, b in self.blackouts.get(principal or (person.name if person else ""), ()) if a <= moment <= b]
            if blocking:
                moment = max(blocking) + 1 + self.rng.randrange(HOUR)
                continue
            return moment
        return moment

    def after(self, person: Person | None, principal: str, moment: int, low: int, high: int) -> int:
        """A random pause of `low` to `high` seconds, then the next moment this caller works."""
        return self.work_time(person, moment + self.rng.randrange(low, high), principal)

    def busy(self, principal: str, kind: str) -> list[int]:
        """Sorted moments of this principal's events of one kind ("privilege", "refused")."""
        return self._busy.setdefault((principal, kind), [])

    def slot(self, person: Person | None, principal: str, after: int, kind: str | None = None, gap: int = 0) -> int:
        """The first moment at or after `after` that suits work_time and, for a `kind` ("privilege", "refused"),
        has no other event of that kind by this principal within `gap` seconds; the moment is then taken."""
        moment = self.work_time(person, after, principal)
        if kind is None:
            return moment
        taken = self.busy(principal, kind)
        while True:
            index = bisect_left(taken, moment)
            if index > 0 and moment - taken[index - 1] < gap:
                moment = self.work_time(person, taken[index - 1] + gap, principal)
            elif index < len(taken) and taken[index] - moment < gap:
                moment = self.work_time(person, taken[index] + gap, principal)
            else:
                taken.insert(index, moment)
                return moment


# --- Who calls: sessions for people and machines ------------------------------------------------------------------

def cli_session(person: Person, ip: str | None = None) -> Session:
    return Session(iam_user_identity(person), person.account, ip or person.ips[0], person.cli, person.name)


def console_session(b: _Builder, person: Person, login: int, ip: str | None = None) -> Session:
    identity = iam_user_identity(person, b.ids.key(), session_start=login)
    return Session(identity, person.account, ip or person.ips[0], person.browser, person.name, console=True)


def role_session(b: _Builder, account: str, role: str, name: str, moment: int, ip: str, ua: str, **options) -> Session:
    created = moment - b.rng.randrange(1, 900)
    identity = role_identity(account, role, name, created, b.ids.key(), **options)
    return Session(identity, account, ip, ua, f"{role}/{name}")


def service_session(account: str, service: str) -> Session:
    return Session({"type": "AWSService", "invokedBy": service}, account, service, service, service, tls=False)


def github_session(b: _Builder, account: str, moment: int) -> Session:
    return role_session(b, account, "GitHubDeploy", f"gha-{b.rng.randrange(7_000_000_000, 8_000_000_000)}", moment,
                        b.rng.choice(GITHUB_IPS), TERRAFORM_UA)


def _bucket_host(bucket: str, region: str = GLOBAL_REGION) -> str:
    return f"{bucket}.s3.{region}.amazonaws.com"


def _policy(actions: list[str], resource: str = "*", effect: str = "Allow") -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": effect, "Action": actions, "Resource": resource}]},
                      indent=4)


def _trust(service: str) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}, indent=4)


def _unauthorized_message(s: Session, action: str, resource: str, ec2: bool = False) -> str:
    arn = s.identity.get("arn", "")
    text = (f"User: {arn} is not authorized to perform: {action} on resource: {resource} "
            f"because no identity-based policy allows the {action} action")
    if ec2:
        return f"You are not authorized to perform this operation. {text}. Encoded authorization failure message: "
    return text
