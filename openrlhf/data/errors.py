"""Errors of dataset loading: one bad row is a RowError (``FILE:LINE: reason``); a failed load a DatasetError.

:class:`DatasetError` is a :class:`~openrlhf.utils.errors.UserError` (the entry points print it as one line);
so is :class:`RowUnusable`, a row found unusable after loading (no SFT target, an image that cannot be read,
images for a text-only model), whose message starts with the row's ``FILE:LINE``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from openrlhf.utils.errors import UserError

# How many bad rows a DatasetError message lists before it says "... and N more".
MAX_LISTED_ERRORS = 20


@dataclass(frozen=True)
class RowError:
    """One invalid row: the file as the user named it, its 1-based line, and why it is invalid."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class RowInvalid(ValueError):
    """Raised by a row normaliser; the loader turns it into a RowError with the row's file and line."""


class RowUnusable(UserError):
    """A loaded row that a later stage cannot use; the message starts with the row's ``FILE:LINE`` (Sample.where)."""


class DatasetError(UserError):
    """A dataset that cannot be used: a file-level problem, or invalid rows with ``data.on_invalid: error``.

    ``errors`` holds every RowError; the message lists the first MAX_LISTED_ERRORS of them.
    """

    def __init__(self, message: str, errors: Sequence[RowError] = ()) -> None:
        self.errors = list(errors)
        super().__init__(message)

    @classmethod
    def from_rows(cls, errors: Sequence[RowError]) -> DatasetError:
        lines = [str(err) for err in errors[:MAX_LISTED_ERRORS]]
        more = len(errors) - len(lines)
        if more > 0:
            lines.append(f"... and {more} more (list them all with: openrlhf-data inspect PATH...)")
        header = (
            f"{len(errors)} invalid row{'s' if len(errors) != 1 else ''} in the dataset "
            "(fix them, or set data.on_invalid: skip to drop them):"
        )
        return cls(header + "\n  " + "\n  ".join(lines), errors)
