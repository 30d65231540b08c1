"""The helpers event text passes through before a markdown-rendering element shows it: mutation-tested (README)."""

import string

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
