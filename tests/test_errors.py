"""first_line: what a one-line error quotes from a library's exception."""

from __future__ import annotations

from hardneg.errors import first_line


def test_first_line_of_a_multi_line_message_or_the_type_name():
    assert first_line(OSError("  cannot open model.bin\nTraceback (most recent call last): ...\n")) == (
        "cannot open model.bin"
    )
    assert first_line(ValueError("")) == "ValueError"
    assert first_line(KeyError("x")) == "'x'"
