"""BM25 over a corpus with bm25s (numba backend), shared by BM25 mining and the BM25 evaluation baseline.

Search runs on every core this process may use (``available_threads``; bm25s's numba kernel splits the
queries over threads, with the same results as one thread); pass ``n_threads`` to choose.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence

import numpy as np

from hardneg.memory import drop_file_pages

logger = logging.getLogger(__name__)

TOKENIZE_CHUNK = 100_000  # corpus texts made Python strings at once while indexing


def available_threads() -> int:
    """The cores this process may run on (its CPU affinity), shared with the other processes of a launcher on
    this machine (``LOCAL_WORLD_SIZE`` of accelerate / torchrun), at most numba's ``NUMBA_NUM_THREADS``."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    local_world = os.environ.get("LOCAL_WORLD_SIZE", "1")
    cores //= max(1, int(local_world)) if local_world.isdigit() else 1
    try:
        import numba

        cores = min(cores, numba.config.NUMBA_NUM_THREADS)
    except ImportError:  # bm25s without numba: no numba threads to cap
        pass
    return max(1, cores)


class BM25Index:
    """A bm25s index over ``texts`` (any sequence of strings: a list, or ``hardneg.text.ArrowTexts`` read in
    chunks) with string ``ids`` (optional: callers of ``search_indices`` need none).

    ``stemmer``: a PyStemmer language ("english") or None; ``stopwords``: a bm25s stop-word list name
    ("en"), a list of words, or None. ``backend``: "numba" (fast; compiles on first call) or "numpy".
    """

    def __init__(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        *,
        stemmer: str | None = "english",
        stopwords: str | list[str] | None = "en",
        k1: float = 1.5,
        b: float = 0.75,
        method: str = "lucene",
        backend: str = "numba",
        show_progress: bool = True,
    ) -> None:
        import bm25s

        if len(texts) == 0:
            raise ValueError("cannot build a BM25 index over an empty corpus; fix: pass at least one passage")
        if ids is not None and len(texts) != len(ids):
            raise ValueError(f"BM25Index got {len(texts)} texts but {len(ids)} ids")
        self.ids = list(ids) if ids is not None else None
        self._size = len(texts)
        self._stemmer = None
        if stemmer:
            import Stemmer

            self._stemmer = Stemmer.Stemmer(stemmer)
        self._stopwords = stopwords or []
        self.show_progress = show_progress
        self._bm25 = bm25s.BM25(k1=k1, b=b, method=method, backend=backend)
        start = time.perf_counter()
        self._bm25.index(self._tokenize_corpus(texts), show_progress=show_progress)
        logger.info("BM25 index of %d passages: %.1f s", self._size, time.perf_counter() - start)

    def _tokenize_corpus(self, texts: Sequence[str]):
        """The corpus's token ids, ``TOKENIZE_CHUNK`` texts at a time with one vocabulary (bm25s's
        ``Tokenizer``): only one chunk of texts is a Python list at once, and the tokens equal
        ``bm25s.tokenize``'s of the whole list (the same scores, to the bit)."""
        from bm25s.tokenization import Tokenized, Tokenizer

        tokenizer = Tokenizer(stopwords=self._stopwords, stemmer=self._stemmer)
        column = getattr(texts, "column", None)  # an ArrowTexts' column, maybe read through a file map
        ids: list[list[int]] = []
        for start in range(0, len(texts), TOKENIZE_CHUNK):
            chunk = texts[start : start + TOKENIZE_CHUNK]
            ids += tokenizer.tokenize(
                chunk if isinstance(chunk, list) else list(chunk),
                update_vocab=True,
                show_progress=False,
                allow_empty=True,
            )
            if column is not None:  # the texts read are not kept resident beside the index being built
                drop_file_pages(column.slice(start, TOKENIZE_CHUNK))
        vocab = tokenizer.get_vocab_dict()
        empty = vocab.get("")  # the Tokenizer gives a text without tokens the token "" (length 1);
        if empty is not None:  # bm25s.tokenize gives it none (length 0), and so must the index
            ids = [[] if doc == [empty] else doc for doc in ids]
        return Tokenized(ids=ids, vocab=vocab)

    def _tokenize(self, texts: list[str]):
        import bm25s

        return bm25s.tokenize(
            texts,
            stopwords=self._stopwords,
            stemmer=self._stemmer,
            show_progress=self.show_progress,
            allow_empty=True,
        )

    def __len__(self) -> int:
        return self._size

    def search(
        self, queries: Sequence[str], k: int, n_threads: int | None = None
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` (ids, scores) per query, best first (ids: the row numbers as strings when the index was
        built without ids). ``k`` is capped at the corpus size."""
        docs, scores = self.search_indices(queries, k, n_threads)
        ids = self.ids
        return [[ids[j] if ids is not None else str(j) for j in row] for row in docs], np.asarray(scores)

    def search_indices(
        self, queries: Sequence[str], k: int, n_threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (row indices into the corpus, scores) per query, best first, on ``n_threads`` threads
        (default: ``available_threads()``)."""
        k = min(k, self._size)
        start = time.perf_counter()
        tokens = self._tokenize(list(queries))
        threads = available_threads() if n_threads is None else n_threads
        found = self._bm25.retrieve(tokens, k=k, show_progress=self.show_progress, n_threads=threads)
        logger.info(
            "BM25 search of %d queries: %.1f s (%d thread(s))",
            len(queries),
            time.perf_counter() - start,
            threads,
        )
        return found

    def score_pairs(self, queries: Sequence[str], doc_indices: Sequence[int]) -> np.ndarray:
        """BM25 score of each (query, corpus row) pair, equal to the score ``search`` gives that row.

        Reads the pair's entries from the index's sparse score matrix (a binary search per query token), so
        it costs O(query tokens x log(postings)), not a full-corpus scoring.
        """
        from bm25s.tokenization import convert_tokenized_to_string_list

        if len(queries) != len(doc_indices):
            raise ValueError(f"score_pairs got {len(queries)} queries but {len(doc_indices)} rows")
        out = np.zeros(len(queries), dtype=np.float32)
        if not len(queries):
            return out
        m = self._bm25.scores
        data, indices, indptr = m["data"], m["indices"], m["indptr"]
        nonoccurrence = self._bm25.nonoccurrence_array
        strings = convert_tokenized_to_string_list(self._tokenize(list(queries)))
        # The row in the postings' own integer type: a Python int makes searchsorted convert the whole postings
        # slice first (O(postings), ~1 ms for a common word in a 1M pool) instead of a binary search.
        rows = np.asarray(doc_indices).astype(indices.dtype)
        for i, (toks, row) in enumerate(zip(strings, rows, strict=True)):
            total = 0.0
            for t in self._bm25.get_tokens_ids(toks):
                lo, hi = indptr[t], indptr[t + 1]
                j = lo + np.searchsorted(indices[lo:hi], row)  # rows are sorted within a token's postings
                if j < hi and indices[j] == row:
                    total += data[j]
                if nonoccurrence is not None:
                    total += nonoccurrence[t]
            out[i] = total
        return out
