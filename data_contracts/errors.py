"""Errors that make a whole input unusable (as opposed to a bad record, which is quarantined)."""
from __future__ import annotations


class InputError(ValueError):
    """The input cannot be used at all: missing file, unknown format, missing required column.

    The message is one line naming the file, the column (when one is at fault) and what was
    expected, so a command line can print it as it is.
    """

    def __init__(self, path: str, problem: str, column: str | None = None):
        problem = " ".join(str(problem).splitlines())  # e.g. a multi-line message from Arrow
        where = f"{path}: column {column!r}: " if column else f"{path}: "
        super().__init__(where + problem)
        self.path = path
        self.column = column
        self.problem = problem
