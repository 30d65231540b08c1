"""`rules fetch`: download a pinned SigmaHQ release archive, refuse it unless its SHA-256 is the pinned one, and
unpack only its rule files (and license) into the rules folder, replacing the previous release in one rename."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from trailstream.analytics.sigma.loading import RULE_SUFFIXES

CHUNK = 1 << 16
MAX_ARCHIVE_BYTES = 512 << 20
KEPT_NAMES = ("LICENSE", "LICENSE.Detection.Rules.md", "README.md")


class FetchError(RuntimeError):
    """The release could not be fetched or was refused; the message says why and what to do."""


def fetch_release(url: str, sha256: str, folder: Path, timeout: float = 60) -> int:
    """Download `url`, check its SHA-256, unpack its rules into `folder`; returns how many rule files it holds."""
    if not sha256:
        raise FetchError(f"no SHA-256 is pinned for {url}; set [sigma] release_sha256 to the archive's published "
                         "SHA-256 first (a download is never trusted without one)")
    if not url.startswith(("https://", "http://")):
        raise FetchError(f"{url!r} is not an http(s) address")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".sigma-fetch-") as work:
        archive = Path(work) / "release.zip"
        digest = _download(url, archive, timeout)
        if digest != sha256.lower():
            raise FetchError(f"the archive from {url} has SHA-256 {digest}, not the pinned {sha256}; "
                             "nothing was installed")
        staged = Path(work) / "rules"
        count = _unpack(archive, staged)
        _replace(folder, staged)
    return count


def _download(url: str, target: Path, timeout: float) -> str:
    """Stream the archive to `target`, hashing as it goes; refuses an archive above MAX_ARCHIVE_BYTES."""
    digest, size = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(target, "wb") as out:
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > MAX_ARCHIVE_BYTES:
                    raise FetchError(f"the archive from {url} is larger than {MAX_ARCHIVE_BYTES >> 20} MB; refused")
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:
        raise FetchError(f"could not download {url} ({exc}); check the address and the network") from None
    return digest.hexdigest()


def _unpack(archive: Path, staged: Path) -> int:
    """Extract rule files and the license only, refusing names that would land outside the folder."""
    count = 0
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.infolist():
                name = PurePosixPath(member.filename)
                if member.is_dir() or name.is_absolute() or ".." in name.parts:
                    continue
                if name.suffix not in RULE_SUFFIXES and name.name not in KEPT_NAMES:
                    continue
                target = staged.joinpath(*name.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out)
                count += name.suffix in RULE_SUFFIXES
    except zipfile.BadZipFile as exc:
        raise FetchError(f"the downloaded file is not a zip archive ({exc})") from None
    if not count:
        raise FetchError("the archive holds no .yml rule files; nothing was installed")
    return count


def _replace(folder: Path, staged: Path) -> None:
    """Swap the new rules in; the previous release is removed only once the new one is in place."""
    previous = folder.with_name(folder.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    if folder.exists():
        folder.rename(previous)
    staged.rename(folder)
    if previous.exists():
        shutil.rmtree(previous)
