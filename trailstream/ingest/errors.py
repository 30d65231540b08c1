"""The error every source raises, apart from the AWS module so that catching it does not load boto3."""

from __future__ import annotations


class SourceError(Exception):
    """An AWS call failed; str() says what happened and what to do, `transient` says whether to retry later."""

    def __init__(self, message: str, transient: bool = False, code: str | None = None):
        super().__init__(message)
        self.transient = transient
        self.code = code
