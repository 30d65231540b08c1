"""The [sigma] settings: where the rules are, which rule level sends mail, and the pinned SigmaHQ release to fetch."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from trailstream.analytics.sigma.pinned import ARCHIVE_URL

LEVELS = ("informational", "low", "medium", "high", "critical")
# Sigma level -> TrailStream severity (catalog.SEVERITIES has no "informational").
LEVEL_SEVERITY = {"informational": "low", "low": "low", "medium": "medium", "high": "high", "critical": "critical"}
DEFAULT_ALERT_LEVEL = "high"
DEFAULT_FETCH_FOLDER = "sigma-rules"
KEYS = ("rule_paths", "alert_level", "release_url", "release_sha256")
# What `rules fetch` downloads: the archive of the pinned SigmaHQ commit, whose files are checked one by one against
# pinned.MANIFEST. [sigma] release_url may name a mirror of that archive; release_sha256, when set, must also match
# the archive itself (GitHub builds commit archives on the fly, so none is pinned by default).
RELEASE_URL = ARCHIVE_URL
RELEASE_SHA256 = ""


class SigmaSettingsError(ValueError):
    """The [sigma] table cannot be used as written; the message says what to fix."""


@dataclass(frozen=True)
class SigmaSettings:
    """Resolved [sigma] settings: absolute rule paths, the alert level, and the release to fetch."""

    rule_paths: tuple[Path, ...] = ()
    alert_level: str = DEFAULT_ALERT_LEVEL
    release_url: str = RELEASE_URL
    release_sha256: str = RELEASE_SHA256
    fetch_folder: Path = Path(DEFAULT_FETCH_FOLDER)
    explicit: bool = False  # rule_paths came from the file (a missing one is a problem, not "no rules yet")

    def alerts_for(self, level: str) -> bool:
        """Whether a match of a rule at `level` is mailed (at or above alert_level)."""
        return level in LEVELS and LEVELS.index(level) >= LEVELS.index(self.alert_level)


def sigma_settings(settings) -> SigmaSettings:
    """The [sigma] table of a loaded config.Settings (paths relative to the file); SigmaSettingsError on mistakes.

    Without rule_paths, the folder `rules fetch` fills (sigma-rules beside the settings file) is used.
    """
    if hasattr(settings, "section"):
        values, resolve = settings.section("sigma"), settings.resolve
    else:  # a plain dict of sections (scripts, tests), paths relative to the working folder
        values, resolve = dict((settings or {}).get("sigma") or {}), Path
    unknown = [key for key in values if key not in KEYS]
    if unknown:
        raise SigmaSettingsError(f'[sigma] has an unknown setting "{unknown[0]}"; known settings: {", ".join(KEYS)}')
    paths = values.get("rule_paths", [])
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or not all(isinstance(path, str) and path.strip() for path in paths):
        raise SigmaSettingsError('[sigma] rule_paths must be a list of folders, like rule_paths = ["sigma/rules"]')
    level = values.get("alert_level", DEFAULT_ALERT_LEVEL)
    if level not in LEVELS:
        raise SigmaSettingsError(f"[sigma] alert_level must be one of {', '.join(LEVELS)} (it is {level!r})")
    fetch_folder = resolve(DEFAULT_FETCH_FOLDER)
    resolved = tuple(resolve(path.strip()) for path in paths) if paths else (fetch_folder,)
    return SigmaSettings(
        rule_paths=resolved, alert_level=level, release_url=str(values.get("release_url", RELEASE_URL)),
        release_sha256=str(values.get("release_sha256", RELEASE_SHA256)).lower(), fetch_folder=fetch_folder,
        explicit=bool(paths),
    )


def describe_paths(sigma: SigmaSettings) -> str:
    return ", ".join(os.fspath(path) for path in sigma.rule_paths)
