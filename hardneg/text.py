"""Text helpers shared by generation hygiene, mining and decontamination: one definition of each.

- ``normalise_text`` / ``normalise_texts``: lower-case, collapse white space, strip: the key for
  exact-duplicate and query matching;
- ``words`` / ``word_set``: lower-cased word tokens (``\\w+``);
- ``word_jaccard``: Jaccard similarity of two texts' word sets (near-duplicates);
- ``ngram_jaccard`` / ``ngram_overlap``: word n-gram similarity and copy share (generation hygiene);
- ``is_blank`` / ``blank_rows``: a text with nothing visible (empty, white space, zero-width and other format
  or control characters) is empty, for one string or a whole Arrow column.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_WORD = re.compile(r"\w+")
# Invisible: white space (Z*, and Python's/RE2's \s), format characters (Cf: zero-width space/joiners, BOM,
# soft hyphen, word joiner) and control characters (Cc).
_INVISIBLE_CATEGORIES = frozenset(("Zs", "Zl", "Zp", "Cf", "Cc"))
_VISIBLE_RE2 = r"[^\s\p{Z}\p{Cf}\p{Cc}]"  # one visible character, in Arrow's RE2 syntax


def is_blank(text: object) -> bool:
    """Whether ``text`` is not a string or shows nothing: empty, white space or invisible characters only
    (zero-width spaces, joiners, BOM, soft hyphens, control characters). Same rule as ``blank_rows``."""
    if not isinstance(text, str):
        return True
    return all(c.isspace() or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in text)


def blank_rows(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Row indices of a string column whose value is null or ``is_blank`` (vectorised, Arrow's RE2)."""
    visible = pc.match_substring_regex(column, _VISIBLE_RE2).fill_null(False)
    return np.flatnonzero(~np.asarray(visible.to_numpy(zero_copy_only=False), dtype=bool))


def normalise_text(text: str) -> str:
    """Lower-case, collapse white space, strip: the key for exact-duplicate and query matching."""
    return " ".join(text.lower().split())


def normalise_texts(texts: Sequence[str]) -> list[str]:
    """``normalise_text`` of every text."""
    return [normalise_text(t) for t in texts]


def words(text: str) -> list[str]:
    """The lower-cased word tokens (``\\w+``) of a text, in order."""
    return _WORD.findall(text.lower())


def word_set(text: str) -> frozenset[str]:
    """The set of a text's lower-cased words."""
    return frozenset(words(text))


def word_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the lower-cased word sets of two texts (1.0 for two texts without words)."""
    sa, sb = word_set(a), word_set(b)
    if not sa and not sb:
        return 1.0
    return len(sa & sb) / len(sa | sb)


def ngram_overlap(output: str, source: str, n: int = 4) -> float:
    """Share of the output's word n-grams that also occur in ``source`` (1.0 = copied verbatim)."""
    out, src = words(output), words(source)
    n = max(1, min(n, len(out)))
    grams = [tuple(out[i : i + n]) for i in range(len(out) - n + 1)]
    if not grams:
        return 0.0
    have = {tuple(src[i : i + n]) for i in range(len(src) - n + 1)}
    return sum(g in have for g in grams) / len(grams)


def ngram_jaccard(a: str, b: str, n: int = 3) -> float:
    """Jaccard similarity of two texts' word n-gram sets (1.0 when both have none)."""
    wa, wb = words(a), words(b)
    ga = {tuple(wa[i : i + n]) for i in range(max(len(wa) - n + 1, 1))}
    gb = {tuple(wb[i : i + n]) for i in range(max(len(wb) - n + 1, 1))}
    return len(ga & gb) / len(ga | gb) if ga | gb else 1.0
