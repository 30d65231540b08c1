"""A new cache's dictionary is trained in a forked child; a child that dies or never answers must not stop the sync."""

from __future__ import annotations

import os
import signal

from trailstream.cache import store
from trailstream.ingest import sync


def _hang(sender, sample_records) -> None:
    signal.pause()  # as a child stuck on a lock another thread held at the fork


def _die(sender, sample_records) -> None:
    os._exit(1)


def test_a_child_that_never_answers_is_killed_and_the_dictionary_trained_here(monkeypatch):
    monkeypatch.setattr(sync, "_send_dictionary", _hang)
    monkeypatch.setattr(sync, "DICTIONARY_CHILD_SECONDS", 0.5)
    assert sync._dictionary_in_child(sync._dictionary_samples) == store.dictionary_from(sync._dictionary_samples)


def test_a_child_that_dies_leaves_the_dictionary_to_be_trained_here(monkeypatch):
    monkeypatch.setattr(sync, "_send_dictionary", _die)
    assert sync._dictionary_in_child(sync._dictionary_samples) == store.dictionary_from(sync._dictionary_samples)
