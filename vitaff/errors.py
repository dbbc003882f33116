"""The project's error type: a deliberate, user-facing error whose message names the file or config
key at fault and the fix. Stage entry points (:mod:`vitaff.stages._cli`) print it as one line;
anything else is a bug and keeps its traceback."""

from __future__ import annotations


class VitaffError(Exception):
    """An expected error (bad input, missing file, bad config): one clear line, no traceback."""


class MissingFileError(VitaffError, FileNotFoundError):
    """An input file the run needs is missing; the message says which rule or key makes it."""


class InputError(VitaffError, ValueError):
    """Inputs a stage reads are inconsistent with each other (e.g. shards overlap or one is missing)."""
