"""Security detections, one module per finding type; `findings.DETECTORS` is the registry `detect_findings` runs.

Every `detect_*` takes a read-only connection, an optional EventFilter and DetectionSettings, and returns findings;
the `query_*` functions return the frames the security pages draw. Which names and codes count comes from `catalog`.
"""

from trailstream.analytics.detections.admin_grants import grants_full_admin
from trailstream.analytics.detections.common import Finding
from trailstream.analytics.detections.events import breakdown, count_over_time, query_finding_events
from trailstream.analytics.detections.findings import (DETECTORS, SINGLE_EVENT_DETECTORS, detect_findings,
                                                       detect_high_risk_events, filter_findings, findings_by_type,
                                                       findings_frame, format_findings_table, severity_counts)
from trailstream.analytics.detections.impossible_travel import (TRAVEL_INDEX, detect_impossible_travel,
                                                                query_travel, query_travel_pairs,
                                                                query_travel_routes)
from trailstream.analytics.detections.new_country import detect_new_country_sign_ins
from trailstream.analytics.detections.privilege_sprees import detect_privilege_change_sprees
from trailstream.analytics.detections.root_activity import detect_root_activity
from trailstream.analytics.detections.settings import (SETTING_HELP, DetectionSettings, DetectionSettingsError,
                                                       detection_settings, editable_detection_settings,
                                                       set_detection_settings, usable_detection_settings)
from trailstream.analytics.detections.sign_ins import query_sign_ins, sign_in_counts
from trailstream.analytics.detections.stored import (PeriodFindings, query_finding_types, query_period_findings,
                                                     query_period_travel, save_detected_findings)
from trailstream.analytics.detections.unauthorized import detect_unauthorized_bursts, query_unauthorized_calls

__all__ = [
    "DETECTORS", "DetectionSettings", "DetectionSettingsError", "Finding", "PeriodFindings", "SETTING_HELP",
    "SINGLE_EVENT_DETECTORS", "TRAVEL_INDEX", "breakdown", "count_over_time", "detect_findings",
    "detect_high_risk_events", "detect_impossible_travel", "detect_new_country_sign_ins",
    "detect_privilege_change_sprees", "detect_root_activity", "detect_unauthorized_bursts", "detection_settings",
    "editable_detection_settings", "filter_findings", "findings_by_type", "findings_frame", "format_findings_table",
    "grants_full_admin", "query_finding_events", "query_finding_types", "query_period_findings",
    "query_period_travel", "query_sign_ins", "query_travel", "query_travel_pairs", "query_travel_routes",
    "query_unauthorized_calls", "save_detected_findings", "set_detection_settings", "severity_counts",
    "sign_in_counts", "usable_detection_settings",
]
