"""TrailStream: `streamlit run app.py`. Access gate, first-run demo data, the shared sidebar, then the chosen page."""

import re
from pathlib import Path

import streamlit as st

from trailstream.app import sidebar, signin, state

# A local file: a material or emoji icon would be fetched from a font host or CDN on every page, failing offline.
FAVICON = Path(__file__).parent / "trailstream" / "app" / "assets" / "favicon.png"
st.set_page_config(page_title="TrailStream", page_icon=str(FAVICON), layout="wide")

# Section -> (page file, title, icon). Adding a page is one line here.
PAGES = {
    "": [
        ("pages/overview.py", "Overview", ":material/dashboard:"),
    ],
    "Activity": [
        ("pages/network.py", "Network & security groups", ":material/lan:"),
        ("pages/instances.py", "EC2 instances", ":material/dns:"),
        ("pages/elastic_ips.py", "Elastic IPs", ":material/public:"),
        ("pages/iam.py", "IAM", ":material/badge:"),
        ("pages/rare_errors.py", "Rare errors", ":material/bug_report:"),
    ],
    "Security": [
        ("pages/security_overview.py", "Security overview", ":material/shield:"),
        ("pages/sign_ins.py", "Sign-ins", ":material/login:"),
        ("pages/access_denied.py", "Access denied", ":material/block:"),
        ("pages/integrity.py", "Integrity & coverage", ":material/verified_user:"),
    ],
    "Investigate": [
        ("pages/search.py", "Search", ":material/search:"),
        ("pages/principal.py", "Principal activity", ":material/person_search:"),
        ("pages/resource.py", "Resource history", ":material/history:"),
        ("pages/reports.py", "Reports", ":material/summarize:"),
    ],
    "Admin": [
        ("pages/sources.py", "Sources & settings", ":material/settings:"),
        ("pages/sync_history.py", "Sync history", ":material/sync:"),
        ("pages/sql.py", "SQL", ":material/database:"),
        ("pages/alerts.py", "Alerts", ":material/notifications:"),
        ("pages/detection_rules.py", "Detection rules", ":material/rule:"),
        ("pages/audit.py", "Audit log", ":material/policy:"),
    ],
}
ADMIN_SECTIONS = {"Admin"}


def url_path(section: str, title: str) -> str:
    """'activity-elastic-ips': readable, and never a file name (so pages/ is not mistaken for a v1 pages folder)."""
    return re.sub(r"[^a-z0-9]+", "-", f"{section or 'home'} {title}".lower()).strip("-")


identity = signin.gate()
visible = {section: specs for section, specs in PAGES.items() if identity.is_admin or section not in ADMIN_SECTIONS}
page = st.navigation(
    {
        section: [
            st.Page(path, title=title, icon=icon, url_path=url_path(section, title)) for path, title, icon in specs
        ]
        for section, specs in visible.items()
    },
    position="top",
)
state.prepare_cache()
if identity.is_admin:
    sidebar.sync_button()
sidebar.sidebar_filters()
signin.access_note()  # standing notes go to the foot of the sidebar: every page title stays near the top
state.demo_banner()
state.backend_notice(page.title)
page.run()
