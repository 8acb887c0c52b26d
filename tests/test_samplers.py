"""The length-grouped no-duplicates batch sampler."""

from __future__ import annotations

from datasets import Dataset

from hardneg.samplers import LengthGroupedNoDuplicatesBatchSampler


def test_sampler_no_duplicates_and_grouped_lengths():
    texts = [f"passage {'x' * (i % 50)} {i}" for i in range(200)]
    rows = {
        "anchor": [f"q{i}" for i in range(200)],
        "positive": texts,
        # a popular negative shared by many rows, as mined negatives often are
        "negative": ["common negative" if i % 25 == 0 else f"neg {i}" for i in range(200)],
    }
    ds = Dataset.from_dict(rows)
    sampler = LengthGroupedNoDuplicatesBatchSampler(ds, batch_size=16, drop_last=False, seed=3)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(200)), "every row exactly once"
    assert len(sampler) == len(batches)
    for batch in batches:
        values = [v for i in batch for v in (rows["anchor"][i], rows["positive"][i], rows["negative"][i])]
        assert len(values) == len(set(values)), "a text repeats inside a batch"

    # grouping: the length spread inside a batch is far below the spread of a random batch
    def mean_spread(groups):
        spreads = [max(sampler._lengths[i] for i in b) - min(sampler._lengths[i] for i in b) for b in groups]
        return sum(spreads) / len(spreads)

    random_batches = [list(range(200))[i::13] for i in range(13)]
    assert mean_spread(batches) < 0.25 * mean_spread(random_batches)
    sampler.set_epoch(1)
    assert list(sampler) != batches, "a new epoch reshuffles"
