"""Move the SigmaHQ pin: `python -m trailstream.analytics.sigma.repin CHECKOUT [COMMIT] > new.py` prints pinned.py
for the checkout's commit, with one SHA-256 per rule file; save new.py over pinned.py."""

import subprocess
import sys
from pathlib import Path

from trailstream.analytics.sigma import pinned


def module_text(checkout: Path, commit: str) -> str:
    """pinned.py with the pin moved to `commit`, whose files are in `checkout`."""
    text = Path(pinned.__file__).read_text(encoding="utf-8")
    head, rest = text.split("MANIFEST = {\n", 1)
    entries = "".join(f'    "{name}": "{digest}",\n' for name, digest in pinned.manifest_of(checkout).items())
    head = head.replace(f'COMMIT = "{pinned.COMMIT}"', f'COMMIT = "{commit}"')
    return head + "MANIFEST = {\n" + entries + rest[rest.index("}\n"):]


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = sys.argv[2] if len(sys.argv) > 2 else head.stdout.strip()
    if not commit:
        sys.exit(f"{folder} is not a git checkout: give the commit its files are from as a second argument")
    sys.stdout.write(module_text(folder, commit))
