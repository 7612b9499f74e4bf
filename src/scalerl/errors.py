"""The user-error class: a one-line message naming the file, field or flag and what was expected."""

from __future__ import annotations


class ScalerlError(ValueError):
    """A user-facing error whose message is one line naming the file, field or flag and what was expected.

    ``scalerl``'s command line prints it as ``error: MESSAGE`` and exits with status 2.
    """
