"""Embeddings of the texts a diagnosis needs, reusing every row the build and the evaluation already encoded.

Nothing is encoded twice. For each text (queries with the query prompt, passages with the passage prompt):

1. evaluation's cache (``<run>/cache/embeddings/v<format>-<model fingerprint>-<corpus>-<settings>/``, written by
   ``hardneg.encode.encode_corpus``): folders of the same weights (``fingerprint_model``) and the same prompt and
   dtype, found by the text hashes stored beside them (``text_hashes.npy``); only finished parts are read;
2. the build's pool cache (``<run>/cache/pool_embeddings/corpus_embeddings_<hash>.npy``, written by
   ``hardneg.negatives.dense.encode_pool``) for passages, when it was encoded by the same model id with the same
   maximum length and document prompt (``text_index/<stem>.meta.json`` and ``.text_hashes.npy``);
3. whatever is left is encoded with ``encode_corpus`` into evaluation's cache under its own key, so a rerun
   (or the explorer, or the benchmark's second pass) encodes nothing.

Rows are returned L2-normalised (every measure is a cosine).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hardneg.encode import (
    TEXT_HASHES,
    cache_key,
    cached_parts,
    encode_corpus,
    fingerprint_model,
    fingerprint_texts,
    text_hashes,
)
from hardneg.negatives.dense import POOL_INDEX, POOL_META

logger = logging.getLogger(__name__)


@dataclass
class EncodeCost:
    """How many texts came from which cache and how long encoding the rest took."""

    texts: int = 0
    from_evaluation_cache: int = 0
    from_pool_cache: int = 0
    encoded: int = 0
    encode_seconds: float = 0.0
    sources: list[str] = field(default_factory=list)


def _normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _fill(out: np.ndarray, found: np.ndarray, want: dict[int, list[int]], hashes: np.ndarray, rows_of) -> int:
    """Copy rows whose hash is wanted and not yet found; ``rows_of(indices)`` loads those stored rows."""
    hit = [i for i, h in enumerate(hashes.tolist()) if h in want and not found[want[h][0]]]
    if not hit:
        return 0
    emb = rows_of(np.asarray(hit))
    n = 0
    for row, i in zip(emb, hit, strict=True):
        for t in want[int(hashes[i])]:
            if not found[t]:
                out[t] = row
                found[t] = True
                n += 1
    return n


def _from_evaluation_cache(
    folder: Path, model_fp: str, prompt: str, dtype: str, out: np.ndarray, found: np.ndarray, want
) -> tuple[int, list[str]]:
    n, used = 0, []
    for cache, hashes, emb in cached_parts(folder, model_fp, prompt, dtype):
        got = _fill(out, found, want, hashes, lambda hit, e=emb: np.asarray(e[hit]))
        if got:
            n += got
            used.append(str(cache))
    return n, sorted(set(used))


def _from_pool_cache(
    folder: Path, model_id: str, model, prompt: str, out: np.ndarray, found: np.ndarray, want
) -> tuple[int, list[str]]:
    n, used = 0, []
    for meta_path in sorted((folder / POOL_INDEX).glob(f"*.{POOL_META}")):
        meta = json.loads(meta_path.read_text())
        stem = meta_path.name[: -len(f".{POOL_META}")]
        same = (
            meta.get("model") == model_id
            and meta.get("max_seq_length") == model.max_seq_length
            and (meta.get("document_prompt") or "") == (prompt or "")
        )
        if not same or not (folder / f"{stem}.npy").is_file():
            continue
        emb = np.load(folder / f"{stem}.npy", mmap_mode="r")
        hashes = np.load(folder / POOL_INDEX / f"{stem}.{TEXT_HASHES}")
        if len(hashes) != len(emb):
            continue
        got = _fill(out, found, want, hashes, lambda hit, e=emb: np.asarray(e[hit]))
        if got:
            n += got
            used.append(str(folder / f"{stem}.npy"))
    return n, used


def embed_texts(
    model,
    texts: Sequence[str],
    *,
    prompt: str = "",
    cache_root: str | Path | None = None,
    model_id: str | None = None,
    passages: bool = True,
    batch_size: int = 32,
    dtype: str = "float32",
    cost: EncodeCost | None = None,
    show_progress: bool = True,
    model_fingerprint: str | None = None,
) -> np.ndarray:
    """Unit-normalised embeddings of ``texts`` (in order), from the caches under ``cache_root`` where they
    hold them, else encoded once (``encode_corpus``) and cached there (see the module docstring).

    ``passages``: the texts are passages (the build's pool cache may hold them); ``model_id``: the id the
    model was loaded from (the pool cache's key). ``cost`` collects where the rows came from.
    ``model_fingerprint``: ``hardneg.encode.fingerprint_model(model)`` when the caller has it (it hashes every
    weight: compute it once per model, not once per call).
    """
    import time

    cost = cost if cost is not None else EncodeCost()
    n = len(texts)
    cost.texts += n
    if n == 0:
        return np.zeros((0, model.get_embedding_dimension() or 0), dtype=np.float32)
    dim = model.get_embedding_dimension()
    out = np.zeros((n, dim), dtype=np.float32)
    found = np.zeros(n, dtype=bool)
    hashes = text_hashes(texts)
    want: dict[int, list[int]] = {}
    for i, h in enumerate(hashes.tolist()):
        want.setdefault(h, []).append(i)
    root = Path(cache_root) if cache_root else None
    model_fp = model_fingerprint or fingerprint_model(model)
    if root is not None and (root / "embeddings").is_dir():
        got, used = _from_evaluation_cache(root / "embeddings", model_fp, prompt, dtype, out, found, want)
        cost.from_evaluation_cache += got
        cost.sources += used
    if root is not None and passages and model_id and (root / "pool_embeddings").is_dir():
        got, used = _from_pool_cache(root / "pool_embeddings", model_id, model, prompt, out, found, want)
        cost.from_pool_cache += got
        cost.sources += used
    missing = np.flatnonzero(~found)
    if len(missing):
        rest = [texts[i] for i in missing]
        ids = [str(h) for h in hashes[missing].tolist()]
        key = cache_key(model_fp, fingerprint_texts(ids, rest), prompt, dtype)
        t0 = time.perf_counter()
        emb = encode_corpus(
            model,
            rest,
            prompt=prompt,
            batch_size=batch_size,
            cache_dir=root / "embeddings" if root is not None else None,
            cache_key=key,
            dtype=dtype,
            show_progress=show_progress,
        )
        cost.encode_seconds += time.perf_counter() - t0
        cost.encoded += len(missing)
        out[missing] = emb
    return _normalise(out)
