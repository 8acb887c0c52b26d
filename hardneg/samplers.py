"""Batch samplers for training (sentence-transformers keeps its own in ``sentence_transformers/sampler.py``).

- ``LengthGroupedNoDuplicatesBatchSampler``: no duplicate text inside a batch (in-batch negatives stay
  true negatives), batches made of similar-length rows so less compute is spent on padding.
- ``batch_sampler(name, group_size)``: the value a ``TrainConfig.batch_sampler`` name gives the trainer.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Literal

import torch
from datasets import Dataset
from sentence_transformers.base.sampler import DefaultBatchSampler
from sentence_transformers.sentence_transformer.training_args import BatchSamplers

SamplerName = Literal["length_grouped_no_duplicates", "no_duplicates", "batch_sampler"]


class LengthGroupedNoDuplicatesBatchSampler(DefaultBatchSampler):
    """Batches with no repeated text (across anchor/positive/negative) made of similar-length rows.

    Why: with in-batch negatives (MNRL, GIST) a repeated passage inside a batch becomes a false
    negative, which sentence-transformers' ``NoDuplicatesBatchSampler`` prevents. Each batch is padded
    to its longest text, so batches of similar lengths waste less compute on padding (the idea of
    transformers' ``group_by_length``: sort by length inside shuffled mega-batches).

    The two interact: sorting by length puts identical texts next to each other, which a greedy
    no-duplicates pass would then have to skip. So rows are first shuffled, cut into groups of
    ``group_size`` batches, sorted by length inside each group, and batches are filled greedily in that
    order; a row that would repeat a text waits in the pool for a later batch. The order of the
    resulting batches is shuffled again, so training does not run from short to long. The length is the
    character count of the row's longest text (cheap, no tokenisation; it tracks token counts closely).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        drop_last: bool,
        valid_label_columns: list[str] | None = None,
        generator: torch.Generator | None = None,
        seed: int = 0,
        group_size: int = 16,
    ) -> None:
        super().__init__(
            dataset,
            batch_size=batch_size,
            drop_last=drop_last,
            valid_label_columns=valid_label_columns,
            generator=generator,
            seed=seed,
        )
        self.group_size = group_size
        columns = [c for c in dataset.column_names if c not in (valid_label_columns or [])]
        rows = dataset.select_columns(columns).to_dict()
        self._texts = [tuple(str(rows[c][i]) for c in columns) for i in range(len(dataset))]
        self._lengths = [max(len(t) for t in texts) for texts in self._texts]

    def _batches(self) -> list[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(len(self._texts), generator=generator).tolist()
        group = self.batch_size * max(1, self.group_size)
        batches: list[list[int]] = []
        pool: list[int] = []
        for start in range(0, len(order), group):
            pool = sorted(pool + order[start : start + group], key=lambda i: -self._lengths[i])
            pool = self._fill(pool, batches, final=start + group >= len(order))
        batches += self._leftover(pool)
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffled]

    def _fill(self, pool: list[int], batches: list[list[int]], *, final: bool) -> list[int]:
        """Greedily cut full duplicate-free batches from the length-sorted pool; return what is left."""
        while len(pool) >= self.batch_size:
            batch, rest = self._take_batch(pool)
            if len(batch) < self.batch_size and not final:
                return pool  # too many repeats here: wait for more rows from the next group
            batches.append(batch)
            pool = rest
            if len(batch) < self.batch_size:
                break
        return pool

    def _leftover(self, pool: list[int]) -> list[list[int]]:
        """Rows that are left at the end form (smaller) duplicate-free batches."""
        batches = []
        while pool:
            batch, pool = self._take_batch(pool)
            batches.append(batch)
        return batches

    def _take_batch(self, pool: list[int]) -> tuple[list[int], list[int]]:
        """The first rows of ``pool`` (in order) that fit one batch without repeating a text; and the rest."""
        batch, seen, rest = [], set(), []
        for i in pool:
            if len(batch) < self.batch_size and seen.isdisjoint(self._texts[i]):
                batch.append(i)
                seen.update(self._texts[i])
            else:
                rest.append(i)
        return batch, rest

    def _epoch_batches(self) -> list[list[int]]:
        if getattr(self, "_cached_epoch", None) != self.epoch:
            self._cached, self._cached_epoch = self._batches(), self.epoch
        return self._cached

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._epoch_batches()

    def __len__(self) -> int:
        return len(self._epoch_batches())


def batch_sampler(name: SamplerName, group_size: int):
    """The ``batch_sampler`` value for sentence-transformers' training arguments."""
    if name == "length_grouped_no_duplicates":
        # a partial (not a subclass made on the fly) so the training arguments stay picklable for checkpoints
        return functools.partial(LengthGroupedNoDuplicatesBatchSampler, group_size=group_size)
    return {"no_duplicates": BatchSamplers.NO_DUPLICATES, "batch_sampler": BatchSamplers.BATCH_SAMPLER}[name]
