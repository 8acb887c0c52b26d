"""Candidate providers: where a mined method's candidates come from, behind one small protocol.

``mine_hard_negatives`` asks a provider for the top-``k`` candidates of each query (with every known
positive's score under the same scorer) and then applies the shared filters (``hardneg.negatives.mining``).
A provider is

- ``name``: what ``stats["params"]["method"]`` records (``bm25``, ``dense``, ``ce``);
- ``candidates(query_texts, passages, positive_rows, k=..., run=MiningRun)`` -> ``Candidates``;
- ``params()``: its settings for ``stats["params"]`` (after the common ones);
- ``scorer_name``: the relevance scorer its scores come from when that scorer is also a false-negative scorer
  (the CE rescoring), else None: the miner then reports the suspected-false-negative rate for free.

Shipped: ``BM25Provider`` and ``DenseProvider`` (first stages) and ``Rescored`` (a first stage rescored by a
cross-encoder / query-likelihood scorer). ``register_provider(name, factory)`` adds one, so
``mine_hard_negatives(method=name)`` finds it; a factory takes the ``ProviderSettings`` of the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from hardneg.distributed import Shard
from hardneg.negatives.bm25 import BM25Options, bm25_candidates, bm25_index
from hardneg.negatives.cross_encoder import rescore_candidates
from hardneg.negatives.dense import PoolSearch, dense_candidates, encode_pool, load_embedder
from hardneg.negatives.mining import Candidates
from hardneg.scorers import load_scorer


@dataclass
class MiningRun:
    """The per-call settings a provider may use (none of them changes which candidates it returns)."""

    batch_size: int = 16
    cache_dir: str | Path | None = None  # resumable work (finished blocks, rescoring scores)
    cache_folder: str | Path | None = None  # pool embeddings (dense)
    shard: Shard | None = None
    show_progress: bool = True
    # what a provider builds once for this call's pool (its index, the pool's embeddings), reused by every block
    # of queries and freed when the call ends
    state: dict[str, Any] = field(default_factory=dict)


class CandidateProvider(Protocol):
    name: str
    scorer_name: str | None

    def candidates(
        self,
        query_texts: list[str],
        passages: list[str],
        positive_rows: np.ndarray,
        *,
        k: int,
        run: MiningRun,
    ) -> Candidates: ...

    def params(self) -> dict[str, Any]: ...


@dataclass
class ProviderSettings:
    """``mine_hard_negatives``' provider arguments, from which a registered factory builds its provider."""

    scorer: Any = "embedded:ql"
    candidate_method: str = "bm25"
    embedder: Any = "embedded:minilm"
    bm25_options: Any = None
    use_faiss: bool = False


@dataclass
class BM25Provider:
    """BM25 top passages (``hardneg.negatives.bm25``)."""

    options: BM25Options | None = None
    name: str = "bm25"
    scorer_name: str | None = None

    def candidates(self, query_texts, passages, positive_rows, *, k, run) -> Candidates:
        key = f"bm25 index {self.options}"  # built once per call, searched per block
        if key not in run.state:
            run.state[key] = bm25_index(passages, self.options, show_progress=run.show_progress)
        return bm25_candidates(
            query_texts, passages, positive_rows, k=k, index=run.state[key], show_progress=run.show_progress
        )

    def params(self) -> dict[str, Any]:
        return {"bm25": vars(self.options or BM25Options())}


@dataclass
class DenseProvider:
    """Nearest passages under a bi-encoder (``hardneg.negatives.dense``): an id or a loaded model."""

    embedder: Any = "embedded:minilm"
    use_faiss: bool = False
    name: str = "dense"
    scorer_name: str | None = None

    def candidates(self, query_texts, passages, positive_rows, *, k, run) -> Candidates:
        named = isinstance(self.embedder, str)
        key = f"dense pool {embedder_label(self.embedder)} {id(self.embedder)}"  # encoded once per call
        if key not in run.state:
            model = load_embedder(self.embedder) if named else self.embedder
            embeddings = encode_pool(
                passages,
                model,
                batch_size=run.batch_size,
                cache_folder=run.cache_folder,
                model_id=self.embedder if named else None,
                shard=run.shard,
                show_progress=run.show_progress,
            )
            run.state[key] = (model, PoolSearch(model, embeddings, in_place=True))
            del embeddings
        model, pool = run.state[key]
        return dense_candidates(
            query_texts,
            passages,
            positive_rows,
            k=k,
            model=model,
            batch_size=run.batch_size,
            use_faiss=self.use_faiss,
            show_progress=run.show_progress,
            pool=pool,
        )

    def params(self) -> dict[str, Any]:
        return {"embedder": embedder_label(self.embedder)}


@dataclass
class Rescored:
    """A first stage's candidates rescored by a relevance scorer (``hardneg.negatives.cross_encoder``)."""

    first: CandidateProvider
    scorer: Any = "embedded:ql"
    name: str = "ce"

    @property
    def scorer_name(self) -> str | None:
        return getattr(self.scorer, "name", self.scorer)

    def candidates(self, query_texts, passages, positive_rows, *, k, run) -> Candidates:
        first = self.first.candidates(query_texts, passages, positive_rows, k=k, run=run)
        named = isinstance(self.scorer, str)
        scorer = load_scorer(self.scorer, show_progress=run.show_progress) if named else self.scorer
        return rescore_candidates(
            query_texts,
            passages,
            positive_rows,
            first,
            scorer=scorer,
            batch_size=run.batch_size,
            cache_dir=run.cache_dir,
            show_progress=run.show_progress,
        )

    def params(self) -> dict[str, Any]:
        return {"scorer": self.scorer_name, "candidate_method": self.first.name, **self.first.params()}


def embedder_label(model: Any) -> str:
    """An embedder's name for the stats: its id, or the model a loaded one was made from."""
    if isinstance(model, str):
        return model
    return getattr(getattr(model, "model_card_data", None), "base_model", None) or type(model).__name__


Factory = Callable[[ProviderSettings], CandidateProvider]
PROVIDERS: dict[str, Factory] = {}
FIRST_STAGES: list[str] = []  # providers that can feed a rescoring stage


def register_provider(name: str, factory: Factory, *, first_stage: bool = False) -> None:
    """Make ``mine_hard_negatives(method=name)`` build its provider with ``factory(settings)``."""
    PROVIDERS[name] = factory
    if first_stage and name not in FIRST_STAGES:
        FIRST_STAGES.append(name)


def first_stage(name: str, settings: ProviderSettings) -> CandidateProvider:
    if name not in FIRST_STAGES:
        raise ValueError(f"unknown candidate_method '{name}'; fix: use {' or '.join(FIRST_STAGES)}")
    return PROVIDERS[name](settings)


def provider_for(method: str | CandidateProvider, settings: ProviderSettings) -> CandidateProvider:
    """The provider ``method`` names (a registered name) or ``method`` itself (a provider object)."""
    if not isinstance(method, str):
        return method
    if method not in PROVIDERS:
        raise ValueError(f"unknown method '{method}'; fix: use one of {sorted(PROVIDERS)}")
    return PROVIDERS[method](settings)


register_provider("bm25", lambda s: BM25Provider(s.bm25_options), first_stage=True)
register_provider("dense", lambda s: DenseProvider(s.embedder, s.use_faiss), first_stage=True)
register_provider("ce", lambda s: Rescored(first_stage(s.candidate_method, s), s.scorer))
