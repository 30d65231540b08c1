"""`rules fetch`: download the archive of the pinned SigmaHQ commit and install its CloudTrail rules (and license)
only when every file matches the pinned manifest (pinned.py), replacing the previous rules in one rename."""

from __future__ import annotations

import hashlib
import shutil
import stat
import tempfile
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from trailstream.analytics.sigma.pinned import COMMIT, MANIFEST, RULES_FOLDER

CHUNK = 1 << 16
MAX_ARCHIVE_BYTES = 512 << 20  # the whole SigmaHQ repository zips to about 30 MB
MAX_FILE_BYTES = 1 << 20  # a rule file is a few kB


class FetchError(RuntimeError):
    """The rules could not be fetched or were refused; the message says why and what to do."""


def fetch_release(url: str, sha256: str, folder: Path, timeout: float = 60) -> int:
    """Download `url` (an archive of the pinned commit), check it against the manifest (and against `sha256` when
    one is given), install its rules into `folder`; returns how many rule files it installed."""
    if not url.startswith(("https://", "http://")):
        raise FetchError(f"{url!r} is not an http(s) address; fix [sigma] release_url in the settings file")
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="trailstream-sigma-") as work:
        archive = Path(work) / "archive.zip"
        digest = _download(url, archive, timeout)
        if sha256 and digest != sha256.lower():
            raise FetchError(f"the archive from {url} has SHA-256 {digest}, not the pinned {sha256}; "
                             "nothing was installed")
        files = verified_files(archive)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".sigma-fetch-") as work:
        staged = Path(work) / "rules"
        for name, content in files.items():
            target = staged.joinpath(*PurePosixPath(name).parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        _replace(folder, staged)
    return sum(name.startswith(RULES_FOLDER + "/") for name in files)


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


def _refused(reason: str) -> FetchError:
    return FetchError(f"the archive is not SigmaHQ commit {COMMIT[:12]} as pinned: {reason}; nothing was installed")


def _checked_names(bundle: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """Members by their path below the archive's one top folder; refuses unsafe names, duplicates and links among
    the files to install (the rest of the repository is never extracted)."""
    members: dict[str, zipfile.ZipInfo] = {}
    roots = set()
    for member in bundle.infolist():
        name = PurePosixPath(member.filename)
        if "\\" in member.filename or name.is_absolute() or ".." in name.parts or PureWindowsPath(name).drive:
            raise _refused(f"member {member.filename[:200]!r} would be written outside the rules folder")
        roots.add(name.parts[0])
        if member.is_dir() or len(name.parts) < 2:
            continue
        inner = PurePosixPath(*name.parts[1:]).as_posix()
        if inner in members:
            raise _refused(f"{inner!r} is in it twice")
        if _installed(inner) and stat.S_ISLNK(member.external_attr >> 16):
            raise _refused(f"member {member.filename[:200]!r} is a symbolic link")
        members[inner] = member
    if len(roots) != 1:
        raise _refused("it does not hold exactly one top folder, as a GitHub commit archive does")
    return members


def _installed(name: str) -> bool:
    """Whether a path of the archive (below its top folder) is one rules fetch would install or refuse as extra."""
    return name in MANIFEST or name.startswith(RULES_FOLDER + "/")


def verified_files(archive: Path) -> dict[str, bytes]:
    """The pinned files of the archive by path, each checked against MANIFEST; FetchError on a changed, extra or
    missing file or an unreadable or unsafe archive."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            members = _checked_names(bundle)
            extra = sorted(name for name in members if _installed(name) and name not in MANIFEST)
            missing = sorted(name for name in MANIFEST if name not in members)
            if extra or missing:
                raise _refused("; ".join([f"{_names(extra)} not in the pinned manifest"] * bool(extra)
                                         + [f"{_names(missing)} missing from it"] * bool(missing)))
            files = {name: _read(bundle, members[name]) for name in MANIFEST}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError) as exc:
        raise FetchError(f"the downloaded file is not a readable zip archive ({exc}); nothing was installed") from None
    changed = [name for name, content in files.items() if hashlib.sha256(content).hexdigest() != MANIFEST[name]]
    if changed:
        raise _refused(f"the SHA-256 differs from the pinned one for {_names(changed)}")
    return files


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    return f"{len(names)} file{'' if len(names) == 1 else 's'} ({shown})"


def _read(bundle: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes:
    """A member's bytes, refusing one larger than MAX_FILE_BYTES whatever its header claims."""
    with bundle.open(member) as source:
        content = source.read(MAX_FILE_BYTES + 1)
    if len(content) > MAX_FILE_BYTES:
        raise _refused(f"{member.filename[:200]!r} is larger than {MAX_FILE_BYTES >> 20} MB")
    return content


def _replace(folder: Path, staged: Path) -> None:
    """Swap the new rules in; the previous ones are removed only once the new ones are in place."""
    previous = folder.with_name(folder.name + ".previous")
    if previous.exists():
        shutil.rmtree(previous)
    if folder.exists():
        folder.rename(previous)
    staged.rename(folder)
    if previous.exists():
        shutil.rmtree(previous)
