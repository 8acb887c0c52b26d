"""Dense hard negatives: exact nearest passages under a sentence-transformers bi-encoder.

Score used by the margins and ``max_score``/``min_score``: the model's similarity on normalised embeddings
(cosine for ``embedded:minilm``), in [-1, 1]. Queries go through ``encode_query`` and passages through
``encode_document`` (so models with prompts get them), exactly as sentence-transformers'
``util.mine_hard_negatives`` does; ``use_faiss=True`` searches with a faiss flat inner-product index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tqdm.auto import trange

from hardneg.assets import resolve_embedder
from hardneg.errors import first_line
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
) -> Candidates:
    """Top-``k`` passages per query by embedding similarity, and the similarity of each positive.

    ``positive_rows``: (n,) one positive per query, or (n, m) all its known positives (padded with -2).
    """
    import torch

    doc = model.encode_document(
        list(passages),
        batch_size=batch_size,
        normalize_embeddings=True,
        convert_to_numpy=True,
        show_progress_bar=show_progress,
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
        parts_s, parts_i = [], []
        for i in trange(0, len(qry), search_batch_size, desc="dense search", disable=not show_progress):
            sim = model.similarity(torch.from_numpy(qry[i : i + search_batch_size]), doc_t)
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
