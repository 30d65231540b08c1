"""TrailStream: AWS CloudTrail monitoring on a SQLite cache or a Parquet lake."""

import sys

# sqlite-utils imports pandas and numpy (0.25-0.5 s and 0.1 s of every command's start) only to store their values,
# which TrailStream never stores: hide them while sqlite-utils loads; whatever imports them later (Streamlit) gets them.
_HIDDEN = [name for name in ("pandas", "numpy") if name not in sys.modules]
if _HIDDEN:
    sys.modules.update(dict.fromkeys(_HIDDEN))  # type: ignore[arg-type]
    try:
        import sqlite_utils.db  # noqa: F401
    finally:
        for _name in _HIDDEN:
            del sys.modules[_name]
