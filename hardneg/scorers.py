"""Joint query-passage scorers: the rescoring model of ``ce`` mining and the false-negative estimate.

One small interface, ``scorer.score(queries, passages, batch_size=...) -> np.ndarray`` (pairwise: the
i-th score is for ``(queries[i], passages[i])``; higher means more relevant), behind ``load_scorer``:

- ``embedded:ql`` / ``ql:<causal LM id>``: query likelihood on a causal LM (UPR, Sachan et al. 2022,
  arXiv 2204.07496): the mean log-probability of the query tokens given an instruction prompt that holds
  the passage. Offline default: the generator LM ``embedded:smollm2``, loaded once per process through
  ``hardneg.assets.load_causal_lm`` (shared with the LLM builders). Scores are <= 0 nats per token.
- any other id: a sentence-transformers ``CrossEncoder`` (e.g. ``cross-encoder/ms-marco-MiniLM-L-6-v2``),
  scored exactly as ``CrossEncoder.predict`` does (same activation), only faster.

Both scorers tokenise every distinct text once, score every distinct pair once, and run length-sorted
batches (token lengths, not character counts), so padding is minimal. A scorer object remembers the pairs it
has scored (``memo_limit``), so a build's false-negative rates reuse the mining scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from tqdm.auto import tqdm

from hardneg.assets import EMBEDDED_LLM
from hardneg.errors import first_line

EMBEDDED_QL = "embedded:ql"
# UPR's prompt (Sachan et al. 2022): the passage is the prefix, the query the scored continuation.
QL_PROMPT_PREFIX = "Passage: "
QL_PROMPT_SUFFIX = "\nPlease write a question based on this passage.\nQuestion:"


class Scorer(Protocol):
    """Scores (query, passage) pairs jointly; higher = more relevant."""

    name: str
    score_name: str

    def score(self, queries: Sequence[str], passages: Sequence[str], batch_size: int = 16) -> np.ndarray: ...


def _check_pairs(queries: Sequence[str], passages: Sequence[str], batch_size: int) -> None:
    if len(queries) != len(passages):
        raise ValueError(
            f"score() got {len(queries)} queries but {len(passages)} passages; fix: pass one per pair"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _unique_pairs(
    queries: Sequence[str], passages: Sequence[str]
) -> tuple[list[tuple[str, str]], np.ndarray]:
    """Distinct (query, passage) pairs in first-seen order and, per input pair, its index among them."""
    index: dict[tuple[str, str], int] = {}
    inverse = np.fromiter(
        (index.setdefault((q, p), len(index)) for q, p in zip(queries, passages, strict=True)),
        dtype=np.int64,
        count=len(queries),
    )
    return list(index), inverse


def _length_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices sorted longest first, cut into batches (the longest batch comes first, so memory peaks early)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class _PairScorer:
    """``score`` shared by the scorers: input checks, each distinct pair once, and a memo of every pair this
    object has scored (a build scores the same (query, positive) and (query, candidate) pairs again for the
    false-negative rates of every config; the memo returns the mining scores instead of recomputing them,
    so e.g. a ce negative kept below its positive is never re-scored above it). Subclasses implement
    ``_score_pairs(pairs, batch_size)``."""

    default_batch_size = 16
    memo_limit = 2_000_000  # pairs remembered at most (~100 bytes each); beyond it new scores are not kept

    def score(
        self, queries: Sequence[str], passages: Sequence[str], batch_size: int | None = None
    ) -> np.ndarray:
        batch_size = batch_size or self.default_batch_size
        _check_pairs(queries, passages, batch_size)
        if len(queries) == 0:
            return np.zeros(0, dtype=np.float32)
        pairs, inverse = _unique_pairs(queries, passages)
        memo: dict[tuple[str, str], float] = self.__dict__.setdefault("_memo", {})
        todo = [p for p in pairs if p not in memo]
        fresh = dict(zip(todo, self._score_pairs(todo, batch_size).tolist(), strict=True)) if todo else {}
        if len(memo) + len(fresh) <= self.memo_limit:
            memo.update(fresh)
        out = np.array([fresh[p] if p in fresh else memo[p] for p in pairs], dtype=np.float32)
        return out[inverse]

    def forget(self) -> None:
        """Drop the remembered scores (the next ``score`` computes every pair again)."""
        self.__dict__.pop("_memo", None)

    def _score_pairs(self, pairs: list[tuple[str, str]], batch_size: int) -> np.ndarray:
        raise NotImplementedError


class QueryLikelihoodScorer(_PairScorer):
    """log p(query | passage) per query token under a causal LM (UPR); the offline ``ce`` scorer.

    ``max_passage_tokens`` truncates long passages (the end is dropped), which bounds the cost of a pair.
    """

    def __init__(
        self,
        model_id: str = EMBEDDED_LLM,
        *,
        max_passage_tokens: int = 192,
        dtype: str = "auto",
        device: str | None = None,
        show_progress: bool = True,
    ) -> None:
        from hardneg.assets import best_device, resolve_llm
        from hardneg.llm.transformers_backend import load_local_causal_lm

        self.tokenizer, self.model, _ = load_local_causal_lm(model_id, None, dtype, device or best_device())
        precision = str(self.model.dtype).replace("torch.", "")
        self.name = f"ql:{resolve_llm(model_id).name}" + ("" if precision == "float32" else f"@{precision}")
        self.score_name = f"query log-likelihood given the passage, mean nats per query token ({self.name})"
        self.max_passage_tokens = max_passage_tokens
        self.show_progress = show_progress
        encode = self._encode
        bos = [self.tokenizer.bos_token_id] if self.tokenizer.bos_token_id is not None else []
        self._prefix = bos + encode([QL_PROMPT_PREFIX])[0]
        self._suffix = encode([QL_PROMPT_SUFFIX])[0]

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def _score_pairs(self, pairs: list[tuple[str, str]], batch_size: int) -> np.ndarray:
        import torch

        # Tokenise each distinct text once.
        uq = list(dict.fromkeys(q for q, _ in pairs))
        up = list(dict.fromkeys(p for _, p in pairs))
        q_ids = dict(zip(uq, self._encode([" " + q.strip() for q in uq]), strict=True))
        p_ids = dict(zip(up, self._encode([p.strip() for p in up]), strict=True))
        if any(len(ids) == 0 for ids in q_ids.values()):
            raise ValueError("a query is empty after tokenisation; fix: drop empty queries before scoring")
        prompts = {
            p: self._prefix + ids[: self.max_passage_tokens] + self._suffix for p, ids in p_ids.items()
        }
        seqs = [(prompts[p], q_ids[q]) for q, p in pairs]
        lengths = np.array([len(a) + len(b) for a, b in seqs])
        out = np.empty(len(pairs), dtype=np.float32)
        device = self.model.device
        pad_id = self.tokenizer.pad_token_id
        batches = _length_batches(lengths, batch_size)
        with torch.inference_mode():
            for batch in tqdm(batches, desc="QL scoring", disable=not self.show_progress, unit="batch"):
                width = int(lengths[batch].max())
                keep = max(len(seqs[i][1]) for i in batch) + 1
                ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                target = torch.zeros((len(batch), keep - 1), dtype=torch.long)
                tmask = torch.zeros((len(batch), keep - 1), dtype=torch.bool)
                for row, i in enumerate(batch):
                    prompt, query = seqs[i]
                    seq = prompt + query
                    # Left padding: every query ends at the last position, so only the last `keep` logits matter.
                    ids[row, width - len(seq) :] = torch.tensor(seq)
                    mask[row, width - len(seq) :] = 1
                    target[row, keep - 1 - len(query) :] = torch.tensor(query)
                    tmask[row, keep - 1 - len(query) :] = True
                position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = (
                    self.model(
                        input_ids=ids.to(device),
                        attention_mask=mask.to(device),
                        position_ids=position_ids.to(device),
                        logits_to_keep=keep,
                        use_cache=False,
                    )
                    .logits[:, :-1]
                    .float()
                )
                logp = (
                    torch.log_softmax(logits, dim=-1).gather(-1, target.to(device).unsqueeze(-1)).squeeze(-1)
                )
                tm = tmask.to(device)
                mean = (logp * tm).sum(-1) / tm.sum(-1)
                out[batch] = mean.cpu().numpy()
        return out


class CrossEncoderScorer(_PairScorer):
    """A sentence-transformers ``CrossEncoder``; same scores as ``CrossEncoder.predict``, fewer wasted tokens.

    ``dtype``: matmul precision (``hardneg.assets.autocast``). ``auto`` is bfloat16 on a CUDA GPU with bf16 and
    float32 elsewhere; ``bfloat16`` is also ~1.8x faster on CPUs with avx512_bf16/AMX, scores then move by ~1e-2.

    Never use a CrossEncoder whose classification head is random (a bare encoder checkpoint such as
    all-MiniLM-L6-v2 loads with ``num_labels=1`` but its scores mean nothing): pass a trained reranker.
    """

    def __init__(
        self,
        model_id: str,
        *,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str = "auto",
        model=None,
        show_progress: bool = True,
    ) -> None:
        from hardneg.assets import resolve_dtype

        if model is None:
            from sentence_transformers import CrossEncoder

            try:
                model = CrossEncoder(model_id, max_length=max_length, device=device)
            except OSError as err:
                raise RuntimeError(
                    f"cannot load cross-encoder '{model_id}': {first_line(err)}; fix: check the id and your "
                    "network, or use scorer='embedded:ql' offline"
                ) from None
        self.model = model
        # Matmul precision (autocast): auto = bf16 on a CUDA GPU with bf16, else float32 (predict's numbers).
        self.dtype = str(resolve_dtype(dtype, str(model.device))).replace("torch.", "")
        self.name = model_id if self.dtype == "float32" else f"{model_id}@{self.dtype}"
        self.score_name = f"cross-encoder score ({self.name})"
        self.show_progress = show_progress

    default_batch_size = 32

    def _score_pairs(self, pairs: list[tuple[str, str]], batch_size: int) -> np.ndarray:
        import torch
        from sentence_transformers.util import batch_to_device

        from hardneg.assets import autocast

        ce = self.model
        tok = ce.tokenizer
        # One tokenisation of every distinct pair; batches are padded from these ids.
        enc = tok(
            [q for q, _ in pairs],
            [p for _, p in pairs],
            truncation=True,
            max_length=ce.max_seq_length,
        )
        lengths = np.array([len(x) for x in enc["input_ids"]])
        pad_values = {"input_ids": tok.pad_token_id or 0, "token_type_ids": tok.pad_token_type_id}
        left = tok.padding_side == "left"
        out = np.empty(len(pairs), dtype=np.float32)
        ce.eval()
        with torch.inference_mode(), autocast(self.dtype, ce.device):
            for batch in tqdm(
                _length_batches(lengths, batch_size),
                desc="CE scoring",
                disable=not self.show_progress,
                unit="batch",
            ):
                # Pad from the ids tokenised once (no tokenizer call per batch).
                width = int(lengths[batch].max())
                features = {}
                for key, rows in enc.items():
                    arr = np.full((len(batch), width), pad_values.get(key, 0), dtype=np.int64)
                    for r, i in enumerate(batch):
                        if left:
                            arr[r, width - lengths[i] :] = rows[i]
                        else:
                            arr[r, : lengths[i]] = rows[i]
                    features[key] = torch.from_numpy(arr)
                scores = ce(batch_to_device(features, ce.device))["scores"]
                if torch.is_floating_point(scores) and torch.finfo(scores.dtype).bits < 32:
                    scores = scores.float()
                if ce.activation_fn is not None:
                    scores = ce.activation_fn(scores)
                out[batch] = scores.reshape(len(batch), -1)[:, 0].cpu().numpy()
        return out


def load_scorer(scorer: str = EMBEDDED_QL, **kwargs) -> Scorer:
    """``embedded:ql`` -> LM query likelihood on the embedded generator; ``ql:<causal LM id>`` -> the same on
    any causal LM; anything else -> a sentence-transformers CrossEncoder id or folder."""
    if not scorer:
        raise ValueError("scorer is empty; fix: use 'embedded:ql', 'ql:<causal LM id>' or a CrossEncoder id")
    if scorer == EMBEDDED_QL:
        return QueryLikelihoodScorer(EMBEDDED_LLM, **kwargs)
    if scorer.startswith("ql:"):
        return QueryLikelihoodScorer(scorer[3:], **kwargs)
    if scorer.startswith("embedded:"):
        raise ValueError(f"unknown embedded scorer '{scorer}'; fix: use '{EMBEDDED_QL}' or a CrossEncoder id")
    return CrossEncoderScorer(scorer, **kwargs)
