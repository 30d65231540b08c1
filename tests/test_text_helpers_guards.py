"""The helpers event text passes through before it is shown (markdown escape) or exported (formula-safe CSV);
mutation-tested (README, "Mutation testing")."""

import csv
import io
import string
from datetime import timedelta

import polars as pl

from trailstream.analytics import exports
from trailstream.app.signin import escape_markdown
from trailstream.app.widgets import plain

HOSTILE = "[click](javascript:alert(1)) <img src=x onerror=alert(1)> **bold** `code` # head | cell"


def test_every_ascii_punctuation_mark_gets_exactly_one_backslash():
    assert escape_markdown(string.punctuation) == "".join("\\" + mark for mark in string.punctuation)


def test_letters_digits_spaces_and_other_scripts_are_shown_as_typed():
    text = "Alice 42 Zoë 日本\tline\nnext"
    assert escape_markdown(text) == text


def test_plain_escapes_a_hostile_user_agent_so_no_mark_is_left_live():
    shown = plain(HOSTILE)
    assert shown == escape_markdown(HOSTILE)
    unescaped = [i for i, char in enumerate(shown) if char in string.punctuation and char != "\\"
                 and shown[i - 1] != "\\"]
    assert unescaped == []
    assert shown.replace("\\", "") == HOSTILE.replace("\\", "")


def test_csv_writes_durations_with_their_fractions_binary_as_hex_and_neutralises_enum_text():
    frame = pl.DataFrame({"silent_for": [timedelta(seconds=1.5)], "raw": [b"\x00\xff"],
                          "kind": pl.Series(["=x"], dtype=pl.Enum(["=x"])), "note": ["\tcmd"]})
    (row,) = csv.DictReader(io.StringIO(exports.table_csv(frame).decode()))
    assert row == {"silent_for": "1.5", "raw": "00ff", "kind": "'=x", "note": "'\tcmd"}
