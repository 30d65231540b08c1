"""The [detections] settings: thresholds and windows of every detector, read from the settings file or the form."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from datetime import timedelta

from trailstream.analytics import geo
from trailstream.config import SettingsError


class DetectionSettingsError(ValueError):
    """The [detections] settings cannot be used; `problems` says what to fix, one sentence each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


@dataclass(frozen=True)
class DetectionSettings:
    """Thresholds and windows of every detection; defaults suit a mid-sized company (rates no typing human makes)."""

    unauthorized_threshold: int = 20
    unauthorized_window_minutes: int = 5
    sign_in_failure_threshold: int = 10
    sign_in_failure_window_minutes: int = 5
    privilege_change_threshold: int = 15
    privilege_change_window_minutes: int = 15
    max_travel_speed_kmh: float = 900.0
    min_travel_distance_km: float = 500.0  # nearer places are within the error of IP geolocation
    country_change_window_minutes: int = 60
    root_session_gap_minutes: int = 60
    city_database: str = ""  # a MaxMind GeoLite2-City .mmdb for coordinates; countries only when empty

    @classmethod
    def from_dict(cls, values: dict | None) -> "DetectionSettings":
        """Settings from a [detections] table; unknown keys and bad values are refused with a reason each."""
        values = dict(values or {})
        known = {spec.name: spec for spec in dataclasses.fields(cls)}
        problems = [
            f'[detections] has an unknown setting "{key}"; known settings: {", ".join(known)}'
            for key in values
            if key not in known
        ]
        accepted = {}
        for name, value in values.items():
            spec = known.get(name)
            if spec is None:
                continue
            checked, problem = _checked(name, spec.type, value)
            if problem:
                problems.append(problem)
            else:
                accepted[name] = checked
        if problems:
            raise DetectionSettingsError(problems)
        return cls(**accepted)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def window(self, name: str) -> timedelta:
        return timedelta(minutes=getattr(self, f"{name}_minutes"))


def _checked(name: str, kind: str, value) -> tuple[object, str | None]:
    """One setting's value as its field's type, or the sentence saying why it cannot be."""
    if kind == "str":
        if isinstance(value, str):
            return value.strip(), None
        return None, f'[detections] {name} must be text in quotes, like {name} = "GeoLite2-City.mmdb"'
    wants_int = kind == "int"
    number_types = (int,) if wants_int else (int, float)
    if isinstance(value, bool) or not isinstance(value, number_types) or value <= 0:
        kind = "a whole number" if wants_int else "a number"
        return None, f"[detections] {name} must be {kind} above 0 (it is {value!r})"
    return (int(value) if wants_int else float(value)), None


# Setting -> (label, help) for the settings form on the Security overview page.
SETTING_HELP: dict[str, tuple[str, str]] = {
    "unauthorized_threshold": ("Unauthorized calls in a burst", "Refused calls by one principal within the window."),
    "unauthorized_window_minutes": ("Unauthorized burst window (minutes)", ""),
    "sign_in_failure_threshold": ("Failed sign-ins in a burst", "Failed console sign-ins for one principal."),
    "sign_in_failure_window_minutes": ("Failed sign-in window (minutes)", ""),
    "privilege_change_threshold": ("Privilege changes in a spree",
                                   "IAM, security group, bucket and key policy changes by one principal."),
    "privilege_change_window_minutes": ("Privilege change window (minutes)", ""),
    "max_travel_speed_kmh": ("Fastest possible travel (km/h)", "About an airliner's speed."),
    "min_travel_distance_km": ("Smallest distance that counts (km)", "Nearer places are within IP-location error."),
    "country_change_window_minutes": ("Two-country window (minutes)",
                                      "When only countries are known: two countries this close in time are flagged."),
    "root_session_gap_minutes": ("Root session gap (minutes)", "Root calls closer than this are one finding."),
    "city_database": ("MaxMind GeoLite2-City file", "Path to a .mmdb file for city coordinates (optional)."),
}


def detection_settings(settings) -> DetectionSettings:
    """The [detections] table of a loaded config.Settings, with the city database path read relative to the file."""
    loaded = DetectionSettings.from_dict(settings.section("detections"))
    if loaded.city_database:
        return dataclasses.replace(loaded, city_database=os.fspath(settings.resolve(loaded.city_database)))
    return loaded


def editable_detection_settings(settings) -> dict:
    """The [detections] values as written in the file (defaults where absent or unusable), for the settings form."""
    written = settings.section("detections")

    def pick(name: str, default):
        value = written.get(name, default)
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value if type(value) is type(default) else default

    return {name: pick(name, default) for name, default in DetectionSettings().to_dict().items()}


def set_detection_settings(settings, values: dict) -> DetectionSettings:
    """Check the values and put them in the loaded settings' [detections] table (config.save_settings writes it)."""
    checked = DetectionSettings.from_dict(values)
    settings.set_section("detections", checked.to_dict())
    return checked


def usable_detection_settings(settings) -> tuple[DetectionSettings, list[str]]:
    """The configured settings, or the defaults when they cannot be used, with each problem as a sentence."""
    try:
        loaded = detection_settings(settings)
    except DetectionSettingsError as exc:
        return DetectionSettings(), [*exc.problems, "the default detection settings are used until this is fixed"]
    except SettingsError as exc:
        return DetectionSettings(), [f"the settings file has problems ({'; '.join(exc.problems)}); the default "
                                     "detection settings are used until it is fixed"]
    city_problem = geo.check_city_database(loaded.city_database)
    return loaded, [city_problem] if city_problem else []
