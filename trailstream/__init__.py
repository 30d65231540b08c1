"""TrailStream: AWS CloudTrail monitoring on a SQLite cache or a Parquet lake."""

import sys

if "pandas" not in sys.modules:
    # sqlite-utils imports pandas (0.25-0.5 s of every command's start) only to store pandas Timestamps as text, which
    # TrailStream never stores: hide it while sqlite-utils loads; whatever imports pandas later (Streamlit) gets it.
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        import sqlite_utils.db  # noqa: F401
    finally:
        del sys.modules["pandas"]
