"""Dense hard negatives: exact nearest passages under a sentence-transformers bi-encoder.

Score used by the margins and ``max_score``/``min_score``: the model's similarity on normalised embeddings
(cosine for ``embedded:minilm``), in [-1, 1]. Queries go through ``encode_query`` and passages through
``encode_document`` (so models with prompts get them), exactly as sentence-transformers'
``util.mine_hard_negatives`` does; ``use_faiss=True`` searches with a faiss flat inner-product index.

``cache_folder`` keeps the pool's embeddings as ``corpus_embeddings_<hash>.npy`` (sentence-transformers' name;
the hash covers the model, its prompts, its maximum sequence length and the passages), so a rerun and every
later method with the same embedder encode nothing. Given a ``shard`` (``hardneg.distributed.Shard``: this
process of an ``accelerate launch`` / ``torchrun``) and a ``cache_folder`` every process can read (the build's
``cache/``, on a filesystem the nodes share), each process encodes only its part of the pool, balanced by
tokens, and reads the others' parts (``hardneg.distributed.shared_array``): every process must then make the
same call. The sharded build does this once per embedder before its methods run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from hardneg.assets import resolve_embedder
from hardneg.distributed import Shard, shared_array
from hardneg.encode import TEXT_HASHES, save_atomic, text_hashes, token_lengths
from hardneg.errors import first_line
from hardneg.files import write_atomic
from hardneg.negatives.mining import Candidates, positive_pairs, positive_score_array

ENCODE_CHUNK = 4096  # texts (pool passages; queries, then searched) encoded at once, written into one array
# (sentence-transformers keeps every batch's rows and stacks them at the end: twice the embeddings at once)
SIMILARITY_CELLS = 2**23  # query x pool similarities computed at once (32 MB of float32)


def load_embedder(embedder: str, device: str | None = None):
    """A SentenceTransformer from an id, a folder or ``embedded:minilm``."""
    from sentence_transformers import SentenceTransformer

    ref = resolve_embedder(embedder)
    try:
        return SentenceTransformer(ref.name_or_path, device=device)
    except OSError as err:
        raise RuntimeError(
            f"cannot load embedder '{embedder}': {first_line(err)}; fix: check the id and your network, "
            "or use embedded:minilm offline"
        ) from None


def model_name(model) -> str | None:
    """The id a loaded SentenceTransformer came from (None when it does not say)."""
    return getattr(getattr(model, "model_card_data", None), "base_model", None)


def encode_pool(
    passages: Sequence[str],
    model,
    *,
    batch_size: int = 32,
    cache_folder: str | Path | None = None,
    model_id: str | None = None,
    shard: Shard | None = None,
    show_progress: bool = True,
) -> np.ndarray:
    """Normalised ``encode_document`` embeddings of ``passages``, cached in ``cache_folder`` and split across
    processes by ``shard`` (default: one process; see the module docstring). ``model_id`` names the model in
    the cache key (default: the id it was loaded from; a model that names none is never cached).

    Unlike evaluation's ``hardneg.encode.encode_corpus`` this needs no process group: the build's shards
    finish their LLM stages hours apart on real runs, longer than a collective's timeout, so they meet
    through files. The passages are encoded ``ENCODE_CHUNK`` at a time into one array."""

    def encode(start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop``, ``ENCODE_CHUNK`` passages at a time into one array."""
        out = None
        bar = tqdm(total=stop - start, desc="encoding pool", unit="passage", disable=not show_progress)
        for first in range(start, stop, ENCODE_CHUNK):
            last = min(first + ENCODE_CHUNK, stop)
            part = _encode(model.encode_document, passages[first:last], batch_size)
            if out is None:
                out = np.empty((stop - start, part.shape[1]), dtype=part.dtype)
            out[first - start : last - start] = part
            bar.update(last - first)
        bar.close()
        if out is None:
            return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
        return out

    name = model_id or model_name(model)
    if cache_folder is None or not name:
        return encode(0, len(passages))
    digest = hashlib.sha256(
        repr((name, model.prompts, model.default_prompt_name, model.max_seq_length)).encode()
    )
    for text in passages:
        digest.update(text.encode())
        digest.update(b"\0")
    stem = f"corpus_embeddings_{digest.hexdigest()[:24]}"
    out = shared_array(
        Path(cache_folder),
        stem,
        len(passages),
        encode,
        shard or Shard(),
        lengths=lambda: token_lengths(model, passages),
    )
    if (shard or Shard()).rank == 0 and not (
        Path(cache_folder) / POOL_INDEX / f"{stem}.{TEXT_HASHES}"
    ).is_file():
        write_pool_index(Path(cache_folder), stem, passages, name, model)
    return out


POOL_META = "meta.json"
POOL_INDEX = "text_index"  # a subfolder: `corpus_embeddings_*.npy` in the cache folder stay embeddings only


def write_pool_index(folder: Path, stem: str, passages: Sequence[str], name: str, model) -> None:
    """In ``<folder>/text_index/`` beside ``<stem>.npy``: each passage's text hash and the settings the rows were encoded with, so a later
    stage (``hardneg.diagnose.embed``) can reuse rows by text without the pool they came from."""
    meta = {
        "model": name,
        "max_seq_length": model.max_seq_length,
        "document_prompt": (model.prompts or {}).get("document", ""),
        "default_prompt_name": model.default_prompt_name,
        "normalized": True,
    }
    index = folder / POOL_INDEX
    index.mkdir(exist_ok=True)
    write_atomic(index / f"{stem}.{POOL_META}", json.dumps(meta, indent=1))
    save_atomic(index / f"{stem}.{TEXT_HASHES}", text_hashes(passages))


class PoolSearch:
    """The pool's side of an exact search under ``model.similarity``, prepared once per pool and searched by any
    number of query batches. Embeddings in a float type narrower than float32 are searched in float32, as
    sentence-transformers' similarity functions do. For cosine (``util.cos_sim`` / ``pairwise_cos_sim``:
    normalise both sides, then a matrix product / a row-wise product) the pool is normalised here, once, with
    the same operations, and only that copy is kept (``in_place``: the caller gives its array up, and it is
    normalised where it is, so that no second copy exists even for a moment): the scores are those of
    ``model.similarity`` and ``model.similarity_pairwise`` on the same query embeddings, to the bit."""

    def __init__(self, model, embeddings: np.ndarray, *, in_place: bool = False) -> None:
        import torch

        self.model = model
        self.cosine = model.similarity_fn_name == "cosine"
        given = torch.as_tensor(embeddings)
        doc = _float_tensor(given)
        if self.cosine:
            writable = not isinstance(embeddings, np.ndarray) or embeddings.flags.writeable
            owned = (
                in_place and doc is given and writable
            )  # not upcast into a new tensor: normalised where it is
            doc = torch.nn.functional.normalize(doc, p=2, dim=-1, out=doc if owned else None)
        self.doc = doc
        self._buffer = None  # the (step, pool) similarity matrix, reused by every step (``search``)
        self._faiss = None

    def similarity(self, queries, out=None):
        """(queries, pool) similarities of a batch of query embeddings (a tensor); cosine writes them to ``out``
        when given."""
        import torch

        queries = _float_tensor(queries)
        if not self.cosine:
            return self.model.similarity(queries, self.doc)
        return torch.mm(
            torch.nn.functional.normalize(queries, p=2, dim=-1), self.doc.transpose(0, 1), out=out
        )

    def pairwise(self, queries, rows: np.ndarray):
        """The similarity of each query embedding with the pool row beside it (``similarity_pairwise``)."""
        import torch

        queries = _float_tensor(queries)
        if not self.cosine:
            return self.model.similarity_pairwise(queries, self.doc[rows])
        return (torch.nn.functional.normalize(queries, p=2, dim=-1) * self.doc[rows]).sum(dim=-1)

    def faiss_index(self):
        """A faiss flat inner-product index over the pool (``use_faiss=True``), built once."""
        if self._faiss is None:
            try:
                import faiss
            except ImportError:
                raise RuntimeError(
                    "use_faiss=True needs faiss; fix: pip install faiss-cpu (or faiss-gpu)"
                ) from None
            self._faiss = faiss.IndexFlatIP(self.doc.shape[1])
            self._faiss.add(self.doc.numpy().astype(np.float32, copy=False))
        return self._faiss

    def search(self, queries, k: int, scores: np.ndarray, rows: np.ndarray) -> None:
        """Write the top ``k`` pool rows of each query embedding and their scores to ``rows`` / ``scores`` (one
        row per query), a (step, pool) similarity matrix at a time (``SIMILARITY_CELLS``). For cosine the
        matrix is one buffer kept for every step and call, and the top ``k`` are written in place: fresh
        tens-of-MB temporaries per step, interleaved with the small results kept, fragment the C heap, which
        then only grows (measured: +2 GB over 50k queries on a 100k pool). The other similarity functions
        compute a new matrix per step (``model.similarity``)."""
        import torch

        step = max(1, SIMILARITY_CELLS // max(1, len(self.doc)))
        rows_needed = min(step, len(queries))
        if self.cosine and (self._buffer is None or len(self._buffer) < rows_needed):
            self._buffer = torch.empty((rows_needed, len(self.doc)), dtype=self.doc.dtype)
        for i in range(0, len(queries), step):
            batch = queries[i : i + step]
            sim = self.similarity(batch, out=self._buffer[: len(batch)] if self.cosine else None)
            got = slice(i, i + len(batch))
            if sim.dtype == torch.float32:
                torch.topk(sim, k=k, dim=1, out=(torch.from_numpy(scores[got]), torch.from_numpy(rows[got])))
            else:  # float64 embeddings: scored in float64, kept in float32 like every candidate score
                top = torch.topk(sim, k=k, dim=1)
                scores[got], rows[got] = top.values.numpy(), top.indices.numpy()


def _encode(encode, texts: Sequence[str], batch_size: int) -> np.ndarray:
    """``encode`` (a model's ``encode_query`` / ``encode_document``) of one chunk of texts: normalised, as an
    array, without a bar of its own (the caller's counts the chunks)."""
    return encode(
        list(texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=False,
    )


def _float_tensor(x):
    """A tensor of ``x`` (a tensor or an array), upcast to float32 when its float type is narrower."""
    import torch

    x = torch.as_tensor(x)
    return x.float() if torch.finfo(x.dtype).bits < 32 else x


def dense_candidates(
    query_texts: Sequence[str],
    passages: Sequence[str],
    positive_rows: np.ndarray,
    *,
    k: int,
    model,
    batch_size: int = 32,
    use_faiss: bool = False,
    show_progress: bool = True,
    cache_folder: str | Path | None = None,
    model_id: str | None = None,
    shard: Shard | None = None,
    pool: PoolSearch | None = None,
) -> Candidates:
    """Top-``k`` passages per query by embedding similarity, and the similarity of each positive.

    ``positive_rows``: (n,) one positive per query, or (n, m) all its known positives (padded with -2).
    ``cache_folder`` / ``model_id`` / ``shard``: keep (and share out across processes) the pool's embeddings
    (``encode_pool``); ``pool``: the pool already prepared (``PoolSearch``: a caller searching its queries
    block by block encodes the pool once). The queries are encoded and searched ``ENCODE_CHUNK`` at a time (so
    a query's embedding, and its scores in the last bits, can differ from one ``encode_query`` call over all the
    queries, whose batches sentence-transformers sorts by length: the negatives were the same on 100k queries).
    """
    import torch

    if pool is None:
        embeddings = encode_pool(
            passages,
            model,
            batch_size=batch_size,
            cache_folder=cache_folder,
            model_id=model_id,
            shard=shard,
            show_progress=show_progress,
        )
        pool = PoolSearch(model, embeddings, in_place=True)
        del embeddings
    k = min(k, len(passages))
    index = pool.faiss_index() if use_faiss else None
    pq, prow = positive_pairs(positive_rows)
    positive = np.zeros(len(pq), dtype=np.float32)
    scores = np.zeros((len(query_texts), k), dtype=np.float32)
    rows = np.zeros((len(query_texts), k), dtype=np.int64)
    bar = tqdm(total=len(query_texts), desc="dense search", unit="query", disable=not show_progress)
    for start in range(0, len(query_texts), ENCODE_CHUNK):
        stop = min(start + ENCODE_CHUNK, len(query_texts))
        qry = _encode(model.encode_query, query_texts[start:stop], batch_size)
        if index is None:
            pool.search(torch.from_numpy(qry), k, scores[start:stop], rows[start:stop])
        else:
            scores[start:stop], rows[start:stop] = index.search(qry, k)
        first, last = np.searchsorted(pq, [start, stop])
        positive[first:last] = pool.pairwise(
            torch.from_numpy(qry[pq[first:last] - start]), prow[first:last]
        ).numpy()
        bar.update(stop - start)
    bar.close()
    name = f"{model.similarity_fn_name} similarity of normalised embeddings"
    return Candidates(rows, scores, positive_score_array(positive_rows, positive), name)
