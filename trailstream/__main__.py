"""Entry point for `python -m trailstream`."""

import sys

from trailstream.cli import main

if __name__ == "__main__":
    sys.exit(main())
