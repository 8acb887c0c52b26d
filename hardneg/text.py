"""Text normalisation shared by mining and decontamination (the key for exact-duplicate and query matching)."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc


def normalise_texts(texts: Sequence[str]) -> list[str]:
    """Lower-case, collapse white space, strip: the key for exact-duplicate and query matching."""
    arr = pa.array(list(texts), type=pa.string())
    arr = pc.utf8_trim_whitespace(pc.replace_substring_regex(pc.utf8_lower(arr), r"\s+", " "))
    return arr.to_pylist()
