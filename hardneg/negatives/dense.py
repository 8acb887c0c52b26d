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
from tqdm.auto import trange

from hardneg.assets import resolve_embedder
from hardneg.distributed import Shard, shared_array
from hardneg.encode import TEXT_HASHES, save_atomic, text_hashes, token_lengths
from hardneg.errors import first_line
from hardneg.files import write_atomic
from hardneg.negatives.mining import Candidates, positive_pairs, positive_score_array


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
    through files."""

    def encode(start: int, stop: int) -> np.ndarray:
        if start == stop:
            return np.zeros((0, model.get_embedding_dimension()), dtype=np.float32)
        return model.encode_document(
            list(passages[start:stop]),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=show_progress,
        )

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


SIMILARITY_CELLS = 2**25  # query x pool similarities computed at once (128 MB of float32)


def _pool_similarity(model, doc_t):
    """``model.similarity(queries, pool)`` as a function of a batch of queries. For cosine (sentence-transformers'
    ``util.cos_sim``: normalise both, then a matrix product) the pool is normalised once here, not once per
    batch, with the same operations, so the scores are the same to the bit."""
    import torch

    if model.similarity_fn_name != "cosine":
        return lambda q: model.similarity(q, doc_t)
    pool = torch.nn.functional.normalize(doc_t, p=2, dim=-1).transpose(0, 1)
    return lambda q: torch.mm(torch.nn.functional.normalize(q, p=2, dim=-1), pool)


def dense_candidates(
    query_texts: Sequence[str],
    passages: Sequence[str],
    positive_rows: np.ndarray,
    *,
    k: int,
    model,
    batch_size: int = 32,
    search_batch_size: int = 4096,
    use_faiss: bool = False,
    show_progress: bool = True,
    cache_folder: str | Path | None = None,
    model_id: str | None = None,
    shard: Shard | None = None,
    pool_embeddings: np.ndarray | None = None,
) -> Candidates:
    """Top-``k`` passages per query by embedding similarity, and the similarity of each positive.

    ``positive_rows``: (n,) one positive per query, or (n, m) all its known positives (padded with -2).
    ``cache_folder`` / ``model_id`` / ``shard``: keep (and share out across processes) the pool's embeddings
    (``encode_pool``); ``pool_embeddings``: those embeddings already at hand (a caller searching its queries
    block by block encodes the pool once).
    """
    import torch

    doc = pool_embeddings
    if doc is None:
        doc = encode_pool(
            passages,
            model,
            batch_size=batch_size,
            cache_folder=cache_folder,
            model_id=model_id,
            shard=shard,
            show_progress=show_progress,
        )
    qry = model.encode_query(
        list(query_texts),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress,
    )
    k = min(k, len(passages))
    if use_faiss:
        try:
            import faiss
        except ImportError:
            raise RuntimeError(
                "use_faiss=True needs faiss; fix: pip install faiss-cpu (or faiss-gpu)"
            ) from None
        index = faiss.IndexFlatIP(doc.shape[1])
        index.add(doc)
        scores, rows = index.search(qry, k)
    else:
        doc_t = torch.from_numpy(doc)
        similarity = _pool_similarity(model, doc_t)
        step = max(1, min(search_batch_size, SIMILARITY_CELLS // len(doc)))  # a (step, pool) matrix at a time
        parts_s, parts_i = [], []
        for i in trange(0, len(qry), step, desc="dense search", disable=not show_progress):
            sim = similarity(torch.from_numpy(qry[i : i + step]))
            s, r = torch.topk(sim, k=k, dim=1)
            parts_s.append(s.numpy())
            parts_i.append(r.numpy())
        scores, rows = np.concatenate(parts_s), np.concatenate(parts_i)
    pq, prow = positive_pairs(positive_rows)
    positive_scores = positive_score_array(
        positive_rows,
        model.similarity_pairwise(torch.from_numpy(qry[pq]), torch.from_numpy(doc[prow])).numpy(),
    )
    name = f"{model.similarity_fn_name} similarity of normalised embeddings"
    return Candidates(rows.astype(np.int64), scores.astype(np.float32), positive_scores, name)
