"""The one error type of `policedata`: bad input described in one line for a person to fix."""

from __future__ import annotations


class DataError(Exception):
    """Bad input data or arguments.

    The message is one line naming the file (and the line or column where relevant) and what is
    wrong, e.g. ``"data/2023-01/2023-01-x-street.csv: missing columns 'Crime type', 'Month'"``.
    Callers print ``str(err)``; no traceback is needed to act on it.
    """
