"""A stand-in for CloudTrail in tests and benchmarks: RSA keys, log files and hourly chains of signed digests,
written the way CloudTrail writes them (S3 user metadata for the signature) to moto's S3 or to a local folder."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


@dataclass
class SigningKey:
    """One CloudTrail region key: the private half signs, the public half is what ListPublicKeys hands out."""

    private: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> "SigningKey":
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    def public_der(self, pkcs1: bool = False) -> bytes:
        form = serialization.PublicFormat.PKCS1 if pkcs1 else serialization.PublicFormat.SubjectPublicKeyInfo
        return self.private.public_key().public_bytes(serialization.Encoding.DER, form)

    @property
    def fingerprint(self) -> str:
        return hashlib.md5(self.public_der()).hexdigest()

    def sign(self, text: str) -> str:
        return self.private.sign(text.encode(), padding.PKCS1v15(), hashes.SHA256()).hex()


def public_keys_json(*keys: SigningKey, pkcs1: bool = False) -> str:
    """A --public-keys file, shaped like CloudTrail's ListPublicKeys answer."""
    return json.dumps({"PublicKeyList": [
        {"Value": base64.b64encode(key.public_der(pkcs1)).decode(), "Fingerprint": key.fingerprint,
         "ValidityStartTime": "2026-01-01T00:00:00Z", "ValidityEndTime": "2027-01-01T00:00:00Z"} for key in keys]})


@dataclass
class Written:
    key: str
    body: bytes
    metadata: dict = field(default_factory=dict)


def _stamp(moment: datetime, seconds: bool = True) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ" if seconds else "%Y%m%dT%H%MZ")


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeCloudTrail:
    """Writes what one trail would deliver: log files, and per account and region an hourly digest chain."""

    def __init__(self, bucket: str = "trail-bucket", prefix: str = "", org: str | None = None, trail: str = "main",
                 home: str = "us-east-1"):
        self.bucket, self.prefix, self.org, self.trail, self.home = bucket, prefix, org, trail, home
        self.objects: dict[str, Written] = {}
        self.heads: dict[tuple[str, str], dict] = {}
        self.log_hashes: dict[str, str] = {}  # listed hashes of logs not written here (benchmarks)

    def _base(self, account: str) -> str:
        return f"{self.prefix}AWSLogs/{self.org + '/' if self.org else ''}{account}/"

    def add_log(self, account: str, region: str, when: datetime, name: str, events: list[dict] | None = None) -> str:
        key = (f"{self._base(account)}CloudTrail/{region}/{when:%Y/%m/%d}/"
               f"{account}_CloudTrail_{region}_{_stamp(when, seconds=False)}_{hashlib.md5(name.encode()).hexdigest()[:16]}.json.gz")
        records = events or [{"eventVersion": "1.08", "eventID": f"{account}-{region}-{name}", "eventTime": _iso(when),
                              "eventSource": "s3.amazonaws.com", "eventName": "GetBucketAcl", "awsRegion": region,
                              "recipientAccountId": account, "sourceIPAddress": "198.51.100.7",
                              "userIdentity": {"type": "IAMUser", "userName": "alice", "accountId": account}}]
        self.objects[key] = Written(key, gzip.compress(json.dumps({"Records": records}).encode()))
        return key

    def add_digest(self, account: str, region: str, start: datetime, signer: SigningKey, logs: list[str],
                   starting: bool = False, backfill_at: datetime | None = None) -> str:
        end = start + timedelta(hours=1)
        name = f"{account}_CloudTrail-Digest_{region}_{self.trail}_{self.home}_{_stamp(end)}"
        key = f"{self._base(account)}CloudTrail-Digest/{region}/{end:%Y/%m/%d}/{name}{'_backfill' if backfill_at else ''}.json.gz"
        head = None if starting else self.heads.get((account, region))
        document = {
            "awsAccountId": account, "digestStartTime": _iso(start), "digestEndTime": _iso(end),
            "digestS3Bucket": self.bucket, "digestS3Object": key, "digestPublicKeyFingerprint": signer.fingerprint,
            "digestSignatureAlgorithm": "SHA256withRSA", "newestEventTime": _iso(end), "oldestEventTime": _iso(start),
            "previousDigestS3Bucket": head and self.bucket, "previousDigestS3Object": head and head["key"],
            "previousDigestHashValue": head and head["sha256"], "previousDigestHashAlgorithm": head and "SHA-256",
            "previousDigestSignature": head and head["signature"],
            "logFiles": [{"s3Bucket": self.bucket, "s3Object": log, "hashAlgorithm": "SHA-256",
                          "hashValue": self.log_hashes.get(log) or hashlib.sha256(gzip.decompress(self.objects[log].body)).hexdigest(),
                          "newestEventTime": _iso(end), "oldestEventTime": _iso(start)} for log in logs],
        }
        text = json.dumps(document, indent=1).encode()
        sha256 = hashlib.sha256(text).hexdigest()
        signed = "\n".join((_iso(end), f"{self.bucket}/{key}", sha256, head["signature"] if head else "null"))
        signature = signer.sign(signed)
        metadata = {"signature": signature, "signature-algorithm": "SHA256withRSA"}
        if backfill_at:
            metadata["backfill-generation-timestamp"] = _iso(backfill_at)
        self.objects[key] = Written(key, gzip.compress(text), metadata)
        self.heads[(account, region)] = {"key": key, "sha256": sha256, "signature": signature, "end": end}
        return key

    def hours(self, account: str, region: str, first: datetime, count: int, signer: SigningKey,
              empty: tuple[int, ...] = (), starting: bool = False) -> list[str]:
        """`count` hourly digests from `first` (the first a starting digest if none came before), one log each."""
        digests = []
        for i in range(count):
            head = self.heads.get((account, region))
            start = head["end"] if head and not (starting and i == 0) else first + timedelta(hours=i, seconds=30)
            logs = [] if i in empty else [self.add_log(account, region, start + timedelta(minutes=10),
                                                       f"{region}-{_stamp(start)}")]
            digests.append(self.add_digest(account, region, start, signer, logs, starting=starting and i == 0))
        return digests

    def write_folder(self, root: Path) -> Path:
        """As `aws s3 sync` leaves it: the keys as paths, no metadata."""
        for item in self.objects.values():
            path = root / item.key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(item.body)
        return root

    def write_s3(self, s3) -> None:
        for item in self.objects.values():
            s3.put_object(Bucket=self.bucket, Key=item.key, Body=item.body, Metadata=item.metadata)
