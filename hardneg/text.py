"""Text helpers shared by generation hygiene, mining and decontamination: one definition of each.

- ``normalise_text`` / ``normalise_texts``: lower-case, collapse white space, strip: the key for
  exact-duplicate and query matching;
- ``words`` / ``word_set``: lower-cased word tokens (``\\w+``);
- ``word_jaccard``: Jaccard similarity of two texts' word sets (near-duplicates);
- ``ngram_jaccard`` / ``ngram_overlap``: word n-gram similarity and copy share (generation hygiene);
- ``is_blank`` / ``blank_rows``: a text with nothing visible (empty, white space, zero-width and other format
  or control characters, Hangul fillers, the blank Braille pattern) is empty, for one string or a whole Arrow
  column;
- ``ArrowTexts``: the strings of an Arrow column as a read-only sequence, a Python ``str`` made only for the rows
  read (a corpus of millions stays in Arrow's buffers).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_WORD = re.compile(r"\w+")
# Invisible: white space (Z*, and Python's/RE2's \s), format characters (Cf: zero-width space/joiners, BOM,
# soft hyphen, word joiner) and control characters (Cc).
# Also blank: the Hangul fillers and the blank Braille pattern, letters/symbols that render as nothing.
_INVISIBLE_CATEGORIES = frozenset(("Zs", "Zl", "Zp", "Cf", "Cc"))
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_VISIBLE_RE2 = (  # one visible character, in Arrow's RE2 syntax
    r"[^\s\p{Z}\p{Cf}\p{Cc}" + "".join(f"\\x{{{ord(c):04X}}}" for c in sorted(_BLANK_CHARACTERS)) + "]"
)


def is_blank(text: object) -> bool:
    """Whether ``text`` is not a string or shows nothing: empty, white space or invisible characters only
    (zero-width spaces, joiners, BOM, soft hyphens, control characters). Same rule as ``blank_rows``."""
    if not isinstance(text, str):
        return True
    return all(
        c.isspace() or c in _BLANK_CHARACTERS or unicodedata.category(c) in _INVISIBLE_CATEGORIES
        for c in text
    )


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


class ArrowTexts(Sequence[str]):
    """The strings of an Arrow string column as a read-only ``Sequence[str]``: a Python ``str`` exists only for
    the rows asked for, so a pool of millions of passages costs its Arrow buffers, not an object per row.

    ``texts[i]`` and ``texts[a:b]`` (a list) read on demand, iteration reads ``CHUNK`` rows at a time, and
    ``take(rows)`` gathers rows as an Arrow array (what a table column needs). Chunks of the column are kept
    as they are (no copy): a row is found by a binary search over the chunks' offsets.
    """

    CHUNK = 10_000

    def __init__(self, column: pa.Array | pa.ChunkedArray) -> None:
        self.column = column if isinstance(column, pa.ChunkedArray) else pa.chunked_array([column])
        self._chunks = [c for c in self.column.chunks if len(c)]
        self._starts = np.cumsum([0] + [len(c) for c in self._chunks])

    def __len__(self) -> int:
        return int(self._starts[-1])

    def __getitem__(self, i):  # noqa: ANN001 (int or slice, as Sequence)
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            if step != 1:
                return [self[j] for j in range(start, stop, step)]
            return self.column.slice(start, max(0, stop - start)).to_pylist()
        i = int(i)
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"row {i} is outside the {len(self)} texts")
        c = int(np.searchsorted(self._starts, i, side="right")) - 1
        return self._chunks[c][i - int(self._starts[c])].as_py()

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), self.CHUNK):
            yield from self.column.slice(start, self.CHUNK).to_pylist()

    def take(self, rows: Sequence[int] | np.ndarray) -> pa.Array:
        """The texts of ``rows`` as one Arrow string array."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return pa.array([], self.column.type)
        return take_rows(self.column, rows).combine_chunks()


def take_rows(data: pa.Table | pa.ChunkedArray, rows) -> pa.Table | pa.ChunkedArray:
    """``data.take(rows)``, chunk by chunk. Arrow's ``take`` on a column of many chunks first joins the chunks
    into one array (pyarrow 26: 1,000 rows of a 1M-row table's 672 MB text column cost +1.3 GB), so a gather
    from a large memory-mapped table held a copy of its whole columns; here each chunk gives its own rows, and
    only those are copied. ``rows``: integers (a list, array or Arrow array), in any order, repeats allowed."""
    if isinstance(rows, pa.ChunkedArray | pa.Array):
        rows = rows.to_numpy()
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) and (rows.min() < 0 or rows.max() >= len(data)):
        raise IndexError(
            f"row {int(rows.max() if rows.max() >= len(data) else rows.min())} is outside {len(data)} rows"
        )
    table = isinstance(data, pa.Table)
    pieces = data.to_batches() if table else data.chunks
    starts = np.cumsum([0] + [len(p) for p in pieces])
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    cuts = np.searchsorted(ordered, starts)
    taken = [
        piece.take(pa.array(ordered[cuts[i] : cuts[i + 1]] - starts[i]))
        for i, piece in enumerate(pieces)
        if cuts[i + 1] > cuts[i]
    ]
    out = pa.Table.from_batches(taken, schema=data.schema) if table else pa.chunked_array(taken, data.type)
    if np.array_equal(order, np.arange(len(rows))):
        return out
    return out.take(
        pa.array(np.argsort(order, kind="stable"))
    )  # back in the order asked: only the rows taken


def take_texts(texts: Sequence[str], rows: Sequence[int] | np.ndarray) -> pa.Array:
    """``texts[r]`` for each of ``rows`` as an Arrow string array, from an ``ArrowTexts`` or any sequence."""
    if isinstance(texts, ArrowTexts):
        return texts.take(rows).cast(pa.string())
    return pa.array([texts[int(r)] for r in rows], pa.string())
