"""Community detections: SigmaHQ-format rules run on the cache, by stage (pySigma style).

loading (files -> rules with a state) -> fields + backend (conversion to SQL over `events`) -> evaluation (findings
over a period, counts after each sync, correlations); settings read [sigma]; fetching installs the pinned SigmaHQ rules (pinned.py).
"""

from trailstream.analytics.sigma.evaluation import (FINDING_PREFIX, LICENSE, SigmaRun, detect_sigma_findings,
                                                    evaluate_new_events, save_rules)
from trailstream.analytics.sigma.fetching import FetchError, fetch_release
from trailstream.analytics.sigma.listing import format_rule_table, query_rule_table, status_counts
from trailstream.analytics.sigma.loading import (CONVERTED, FAILED, UNSUPPORTED, LoadedRule, RuleSet,
                                                 configured_rules, load_rules)
from trailstream.analytics.sigma.pinned import COMMIT as PINNED_COMMIT
from trailstream.analytics.sigma.settings import LEVELS, SigmaSettings, SigmaSettingsError, sigma_settings

__all__ = [
    "CONVERTED", "FAILED", "FINDING_PREFIX", "LEVELS", "LICENSE", "PINNED_COMMIT", "UNSUPPORTED", "FetchError", "LoadedRule", "RuleSet",
    "SigmaRun", "SigmaSettings", "SigmaSettingsError", "configured_rules", "detect_sigma_findings",
    "evaluate_new_events", "fetch_release", "format_rule_table", "load_rules", "query_rule_table", "save_rules",
    "sigma_settings", "status_counts",
]
