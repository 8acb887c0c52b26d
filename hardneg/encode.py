"""Corpus encoding (length-sorted, cached, sharded across processes) and exact chunked top-k search.

- ``encode_corpus``: sorts passages by their *token* length after truncation (longest first) so each
  batch pads little (Cranfield with MiniLM: 1.4% padding, vs 10.6% when sorting by characters as
  ``SentenceTransformer.encode`` does), cuts the sorted order into parts and encodes each part with
  ``encode_batches`` (the model's own ``preprocess`` + forward, next batches tokenised in a background
  thread). Every finished part is saved under ``cache_dir/v<format>-<key>/`` where ``key`` hashes the
  model weights, the corpus (ids + texts) and the prompt: a rerun, or a run that crashed half-way,
  encodes only what is missing. Parts are sized from the corpus and the number of processes
  (``auto_part_size``); under ``accelerate launch`` they go to the processes balanced by token count
  (``assign_parts``) and are gathered on every process, in corpus order, so the result is the same as in one
  process.
- The cache's layout is this module's alone: ``cache_folder(cache_dir, key)`` names a cache, and
  ``cached_parts(cache_dir, model_fingerprint, prompt, dtype)`` yields every finished part of any corpus with
  its rows' text hashes (``hardneg.diagnose.embed`` reuses them without knowing the file names).
- ``search_topk``: exact inner-product / cosine search over corpus chunks with a running top-k, so
  memory stays bounded by ``query_chunk_size x corpus_chunk_size`` scores whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from tqdm.auto import tqdm

CACHE_FORMAT = 2  # bump when the cached layout changes: old caches are then ignored, never misread


def fingerprint_texts(ids: Sequence[str], texts: Sequence[str]) -> str:
    """A hash of (id, text) pairs in order: the corpus part of the cache key."""
    h = hashlib.sha256()
    for i, t in zip(ids, texts, strict=True):
        h.update(str(i).encode())
        h.update(b"\x00")
        h.update(t.encode())
        h.update(b"\x01")
    return h.hexdigest()[:20]


def text_hashes(texts: Sequence[str]) -> np.ndarray:
    """An 8-byte hash of each text (uint64, in order): stored beside cached embeddings (``TEXT_HASHES``) so a
    later stage can find the rows of the texts it needs without the corpus they came from
    (``hardneg.diagnose.embed``)."""
    out = np.empty(len(texts), dtype=np.uint64)
    for i, t in enumerate(texts):
        out[i] = int.from_bytes(hashlib.blake2b(t.encode(), digest_size=8).digest(), "little")
    return out


TEXT_HASHES = "text_hashes.npy"


def cache_key(model_fingerprint: str, corpus_fingerprint: str, prompt: str, dtype: str) -> str:
    """The ``encode_corpus`` cache key: model weights + corpus + the settings that change the numbers."""
    settings = fingerprint_texts(["prompt", "dtype"], [prompt or "", dtype])[:8]
    return f"{model_fingerprint}-{corpus_fingerprint}-{settings}"


def fingerprint_model(model) -> str:
    """A hash of every weight of a (sentence-transformers / torch) model, its class and max length.

    Keyed by content, not by path: retraining into the same folder changes the key.
    """
    import torch

    h = hashlib.sha256(type(model).__name__.encode())
    h.update(str(getattr(model, "max_seq_length", "")).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous()
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:20]


def process_state():
    """accelerate's ``PartialState``; several processes with no GPU run as MULTI_CPU over gloo.

    (Without ``cpu=True`` accelerate treats CPU-only processes started by ``accelerate launch --multi_gpu``
    as independent single processes.)
    """
    import torch
    from accelerate import PartialState

    multi = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return PartialState(cpu=multi and not torch.cuda.is_available())


def token_lengths(model, texts: Sequence[str], chunk: int = 8192) -> np.ndarray:
    """Tokens per text after truncation to the model's ``max_seq_length`` (characters if it has no tokenizer)."""
    tokenizer = getattr(model, "tokenizer", None)
    max_len = getattr(model, "max_seq_length", None)
    if tokenizer is None or not callable(tokenizer):
        return np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    out = np.empty(len(texts), dtype=np.int64)
    for s in range(0, len(texts), chunk):
        ids = tokenizer(list(texts[s : s + chunk]), truncation=max_len is not None, max_length=max_len)[
            "input_ids"
        ]
        out[s : s + len(ids)] = [len(x) for x in ids]
    return out


def length_order(lengths: Sequence[int] | np.ndarray) -> np.ndarray:
    """Indices longest first (stable): the order passages are batched in."""
    return np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")


def auto_part_size(n: int, world: int, parts_per_process: int = 4, cap: int = 4096, floor: int = 64) -> int:
    """Passages per part from the corpus size and the number of processes: about ``parts_per_process`` parts
    each, so ``assign_parts`` can balance them (a 4,096-passage part left process 1 of 2 idle on a
    1,400-passage corpus), at most ``cap`` (the unit a crashed run redoes) and at least ``floor``."""
    return int(min(cap, max(floor, -(-n // (max(world, 1) * parts_per_process)))))


def assign_parts(costs: Sequence[float], world: int) -> list[list[int]]:
    """Parts per process, balanced by cost (token count): longest-processing-time first, each part to the
    process with the least work so far; deterministic, so every process computes the same plan.
    (Round-robin over length-sorted parts gave process 0 the long half: 59 s vs 31 s.)"""
    load = [0.0] * world
    plan: list[list[int]] = [[] for _ in range(world)]
    for p in sorted(range(len(costs)), key=lambda p: (-costs[p], p)):
        k = min(range(world), key=lambda r: (load[r], r))
        plan[k].append(p)
        load[k] += float(costs[p])
    return [sorted(parts) for parts in plan]


def encode_batches(
    model,
    texts: Sequence[str],
    *,
    prompt: str | None = None,
    batch_size: int = 32,
    prefetch: int = 2,
    dtype: str = "float32",
) -> np.ndarray:
    """Embeddings of ``texts`` batched in the given order (float32 numpy, same order).

    Same numbers as ``SentenceTransformer.encode`` (its ``preprocess`` + forward), but the next batches are
    tokenised in a background thread while the model runs, and embeddings stay on the device until the
    end (no per-batch device->host sync). Objects without ``preprocess`` fall back to ``encode`` per batch.
    ``dtype``: matmul precision (``hardneg.assets.autocast``); float32 gives ``encode``'s exact numbers.
    """
    import torch

    from hardneg.assets import autocast

    batches = [list(texts[b : b + batch_size]) for b in range(0, len(texts), batch_size)]
    if not hasattr(model, "preprocess"):
        kw = {
            "prompt": prompt or None,
            "batch_size": batch_size,
            "convert_to_numpy": True,
            "show_progress_bar": False,
        }
        with autocast(dtype, getattr(model, "device", "cpu")):
            return np.concatenate([np.asarray(model.encode(b, **kw), dtype=np.float32) for b in batches])
    from concurrent.futures import ThreadPoolExecutor

    from sentence_transformers.util import batch_to_device

    device = model.device
    pin = device.type == "cuda"

    def prepare(batch):
        features = model.preprocess(batch, prompt=prompt or None)
        if pin:
            features = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v for k, v in features.items()}
        return features

    model.eval()
    out = []
    with (
        ThreadPoolExecutor(max_workers=max(1, prefetch)) as pool,
        torch.inference_mode(),
        autocast(dtype, device),
    ):
        futures = [pool.submit(prepare, b) for b in batches[:prefetch]]
        for i in range(len(batches)):
            features = futures[i].result()
            if i + prefetch < len(batches):
                futures.append(pool.submit(prepare, batches[i + prefetch]))
            features = batch_to_device(features, device)
            out.append(model(features)["sentence_embedding"])
            futures[i] = None  # free host memory of consumed batches
    return torch.cat(out).float().cpu().numpy()


def save_atomic(path: Path, array: np.ndarray) -> None:
    """``np.save`` in one rename: a killed writer never leaves half an array under ``path``."""
    tmp = path.with_suffix(f".tmp{os.getpid()}.npy")
    np.save(tmp, array)
    os.replace(tmp, path)


def cache_folder(cache_dir: str | Path, key: str) -> Path:
    """The folder of one ``encode_corpus`` cache: ``<cache_dir>/v<format>-<key>/``."""
    return Path(cache_dir) / f"v{CACHE_FORMAT}-{key}"


_PART = re.compile(r"^part(\d+)-(\d+)\.npy$")


def _part_path(folder: Path, part_size: int, part: int) -> Path:
    # the part size is in the name: a run with another size (other world size) never misreads a part
    return folder / f"part{part_size}-{part:05d}.npy"


def cached_parts(
    cache_dir: str | Path, model_fingerprint: str, prompt: str, dtype: str
) -> Iterator[tuple[Path, np.ndarray, np.ndarray]]:
    """Every finished part cached by ``encode_corpus`` under ``cache_dir`` for these model weights, prompt and
    dtype, whatever the corpus: ``(cache folder, the text hashes of the part's rows, the part's embeddings
    memory-mapped)``. Caches without text hashes (older ones) and damaged parts are skipped."""
    settings = cache_key("", "", prompt, dtype).rsplit("-", 1)[-1]
    for folder in sorted(Path(cache_dir).glob(f"v{CACHE_FORMAT}-{model_fingerprint}-*-{settings}")):
        if not (folder / TEXT_HASHES).is_file() or not (folder / "order.npy").is_file():
            continue
        hashes, order = np.load(folder / TEXT_HASHES), np.load(folder / "order.npy")
        for part in sorted(folder.glob("part*.npy")):
            m = _PART.match(part.name)
            if not m:
                continue
            size, p = int(m.group(1)), int(m.group(2))
            rows = order[p * size : (p + 1) * size]
            emb = np.load(part, mmap_mode="r")
            if len(emb) == len(rows):
                yield folder, hashes[rows], emb


def _length_order(model, texts: Sequence[str], folder: Path | None, prompt: str | None, key: str | None):
    """(lengths, order) of ``texts``: read from the cache folder as the parts were written, else measured
    (and written there by the main process with the text hashes and a meta.json)."""
    state = process_state()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        if (folder / "order.npy").is_file() and (folder / "lengths.npy").is_file():
            order, lengths = np.load(folder / "order.npy"), np.load(folder / "lengths.npy")
            if len(order) != len(texts):
                raise RuntimeError(
                    f"embedding cache {folder} holds {len(order)} passages, not {len(texts)}; delete it"
                )
            if not (folder / TEXT_HASHES).is_file() and state.is_main_process:  # a cache from before hashes
                save_atomic(folder / TEXT_HASHES, text_hashes(texts))
            return lengths, order
    lengths = token_lengths(model, texts)
    order = length_order(lengths)
    if folder is not None and state.is_main_process:
        save_atomic(folder / "lengths.npy", np.asarray(lengths))
        save_atomic(folder / "order.npy", order)
        save_atomic(folder / TEXT_HASHES, text_hashes(texts))
        meta = {"n": len(texts), "prompt": prompt or "", "key": key}
        (folder / "meta.json").write_text(json.dumps(meta, indent=1))
    return lengths, order


def _gather_parts(done: list[tuple[int, np.ndarray]], n_parts: int) -> dict[int, np.ndarray]:
    """Every process's parts, on every process."""
    if process_state().num_processes > 1:
        from accelerate.utils import gather_object

        done = gather_object(done)
    parts = dict(done)
    if len(parts) != n_parts:
        raise RuntimeError(
            f"gathered {len(parts)} of {n_parts} corpus parts; a process failed to encode its share"
        )
    return parts


def encode_corpus(
    model,
    texts: Sequence[str],
    *,
    prompt: str | None = None,
    batch_size: int = 32,
    part_size: int | None = None,
    cache_dir: str | Path | None = None,
    cache_key: str | None = None,
    dtype: str = "float32",
    show_progress: bool = True,
) -> np.ndarray:
    """Embeddings (float32, ``len(texts) x dim``, in input order) of ``texts`` with ``model``.

    ``prompt``: text prepended to every passage (e.g. ``"passage: "`` for E5), ``None``/``""`` for none.
    ``part_size``: passages per cached part (the unit of resumption and of sharding across processes); None:
    ``auto_part_size`` from the corpus size and the number of processes. Parts go to processes balanced by
    their token count (``assign_parts``).
    ``cache_dir``/``cache_key``: where finished parts are kept; ``cache_key`` must identify model + corpus +
    prompt + dtype (``evaluate`` builds it from ``fingerprint_model``/``fingerprint_texts``); no cache if either
    is None. ``dtype``: matmul precision, see ``encode_batches``.
    Under ``accelerate launch`` each process encodes its share of parts on its own device and all
    processes return the full matrix.
    """
    if len(texts) == 0:
        raise ValueError("cannot encode an empty corpus; fix: pass at least one passage")
    state = process_state()
    part_size = part_size or auto_part_size(len(texts), state.num_processes)
    if part_size < 1 or batch_size < 1:
        raise ValueError("part_size and batch_size must be >= 1")
    n_parts = (len(texts) + part_size - 1) // part_size
    folder = cache_folder(cache_dir, cache_key) if cache_dir is not None and cache_key else None
    lengths, order = _length_order(model, texts, folder, prompt, cache_key)
    sorted_lengths = np.asarray(lengths)[order]
    costs = [int(sorted_lengths[p * part_size : (p + 1) * part_size].sum()) for p in range(n_parts)]
    mine = assign_parts(costs, state.num_processes)[state.process_index]
    done: list[tuple[int, np.ndarray]] = []
    bar = tqdm(
        total=sum(min(part_size, len(texts) - p * part_size) for p in mine),
        desc=f"encode corpus [{state.process_index}/{state.num_processes}]",
        unit="doc",
        disable=not show_progress,
    )
    for p in mine:
        idx = order[p * part_size : (p + 1) * part_size]
        path = _part_path(folder, part_size, p) if folder is not None else None
        if path is not None and path.is_file():
            emb = np.load(path)
        else:
            # Batches in our token-length order (encode would re-sort by characters).
            emb = encode_batches(
                model, [texts[i] for i in idx], prompt=prompt, batch_size=batch_size, dtype=dtype
            )
            if path is not None:
                save_atomic(path, emb)
        done.append((p, emb))
        bar.update(len(idx))
    bar.close()
    parts = _gather_parts(done, n_parts)
    out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
    for p, emb in parts.items():
        out[order[p * part_size : (p + 1) * part_size]] = emb
    return out


def search_topk(
    query_embeddings: np.ndarray,
    corpus_embeddings: np.ndarray,
    k: int,
    *,
    similarity: Literal["cosine", "dot"] = "cosine",
    corpus_chunk_size: int = 50_000,
    query_chunk_size: int = 1024,
    device: str | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` corpus rows per query: (indices int64, scores float32), best first.

    ``similarity``: ``cosine`` (embeddings L2-normalised first) or ``dot``. Scores are computed on
    ``device`` (default: CUDA when available) in ``query_chunk_size x corpus_chunk_size`` blocks, merging
    each block's top-k into a running top-k, so memory does not grow with the corpus.
    """
    import torch

    if similarity not in ("cosine", "dot"):
        raise ValueError(f"unsupported similarity '{similarity}'; fix: use a model scored by cosine or dot")
    n_docs = corpus_embeddings.shape[0]
    if n_docs == 0:
        raise ValueError("cannot search an empty corpus")
    k = min(k, n_docs)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    q_all = torch.from_numpy(np.ascontiguousarray(query_embeddings, dtype=np.float32))
    c_all = torch.from_numpy(np.ascontiguousarray(corpus_embeddings, dtype=np.float32))
    if similarity == "cosine":
        q_all = torch.nn.functional.normalize(q_all, dim=-1)
        c_all = torch.nn.functional.normalize(c_all, dim=-1)
    out_idx = np.empty((q_all.shape[0], k), dtype=np.int64)
    out_scores = np.empty((q_all.shape[0], k), dtype=np.float32)
    chunks = [c_all[s : s + corpus_chunk_size].to(device) for s in range(0, n_docs, corpus_chunk_size)]
    with torch.inference_mode():
        for qs in range(0, q_all.shape[0], query_chunk_size):
            q = q_all[qs : qs + query_chunk_size].to(device)
            best_s = torch.full((q.shape[0], 0), float("-inf"), device=device)
            best_i = torch.empty((q.shape[0], 0), dtype=torch.long, device=device)
            offset = 0
            for c in chunks:
                s = q @ c.T
                top_s, top_i = torch.topk(s, min(k, c.shape[0]), dim=1)
                merged_s = torch.cat([best_s, top_s], dim=1)
                merged_i = torch.cat([best_i, top_i + offset], dim=1)
                best_s, pos = torch.topk(merged_s, min(k, merged_s.shape[1]), dim=1)
                best_i = torch.gather(merged_i, 1, pos)
                offset += c.shape[0]
            out_idx[qs : qs + q.shape[0]] = best_i.cpu().numpy()
            out_scores[qs : qs + q.shape[0]] = best_s.float().cpu().numpy()
    return out_idx, out_scores
