"""Screenshot gallery: every page in headless Chromium at 1280 px, on the demo (period 7d) and, with --corpus, on a
cache of the real CloudTrail corpus (period "all"); PNGs go to docs/screenshots/ for the README and for review.

    python benchmarks/screenshots.py                       # demo only
    python benchmarks/screenshots.py --corpus ../shared/corpus
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import page_specs, streamlit_app  # noqa: E402  (the app's page table and server)
from trailstream.ingest import sync  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
OUT = ROOT / "docs" / "screenshots"
WIDTH = 1280
HEIGHT = 2000  # Streamlit scrolls inside its main block, so a full-page shot is only as tall as the window
RUN_LIMIT_MS = 180_000


def url_path(section: str, title: str) -> str:
    """The page's URL path, as app.py names it."""
    import re

    return re.sub(r"[^a-z0-9]+", "-", f"{section or 'home'} {title}".lower()).strip("-")


def shoot(url: str, prefix: str, query: str, only: set[str] | None, out: Path = OUT) -> list[Path]:
    """One full-page PNG per page, named prefix-<url path>.png."""
    from playwright.sync_api import sync_playwright

    written = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
        page.set_default_timeout(RUN_LIMIT_MS)
        # The first request after a start must not be a deep link: Streamlit resolves it against the pages/ folder's
        # file names before app.py's st.navigation runs, and shows a "Page not found" modal over the right page.
        page.goto(url)
        page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
        for section, _path, title in page_specs():
            name = url_path(section, title)
            if only and name not in only:
                continue
            page.goto(f"{url}/{'' if name == 'home-overview' else name}?{query}")
            page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
            page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
            page.wait_for_function("!document.querySelector('[data-testid=\"stSkeleton\"]')")  # tables drawn
            page.wait_for_timeout(1500)  # let Vega draw; a picture, not a measurement
            target = out / f"{prefix}-{name}.png"
            page.screenshot(path=str(target))
            written.append(target)
        browser.close()
    return written


def gallery(db: Path, prefix: str, query: str, only: set[str] | None, out: Path = OUT) -> list[Path]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Path(tmp) / "trailstream.toml"
        settings.write_text("")
        with streamlit_app(db, settings) as url:
            return shoot(url, prefix, query, only, out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, help="the real CloudTrail corpus folder (its events/ are imported)")
    parser.add_argument("--pages", nargs="*", help="URL paths to shoot (default: every page)")
    parser.add_argument("--corpus-only", action="store_true", help="skip the demo gallery")
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNGs (default: docs/screenshots)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    only = set(args.pages) if args.pages else None
    with tempfile.TemporaryDirectory() as tmp:
        written = []
        if not args.corpus_only:
            demo = Path(tmp) / "demo.db"
            sync.import_demo(demo, 3000, seed=11, workers=1)
            written = gallery(demo, "demo", "range=7d", only, args.out)
        if args.corpus:
            real = Path(tmp) / "corpus.db"
            sync.import_paths(real, [args.corpus / "events"], workers=1)
            written += gallery(real, "corpus", "range=all", only, args.out)
    print("\n".join(str(path) for path in written))


if __name__ == "__main__":
    main()
