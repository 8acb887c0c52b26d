"""One-line error messages: the project's errors read ``error: <what went wrong>; fix: <what to do>``."""

from __future__ import annotations


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when the message is empty).

    For quoting a library's error inside a one-line message: tracebacks and multi-line reports stay out.
    """
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
