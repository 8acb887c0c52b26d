"""Evaluation sharding: parts sized from the corpus and the number of processes, dealt to processes balanced
by token count (round-robin over length-sorted parts gave process 0 the long half)."""

from __future__ import annotations

import numpy as np

from hardneg.encode import assign_parts, auto_part_size, length_order, token_lengths


def test_part_size_follows_corpus_and_world():
    assert auto_part_size(1400, 2) == 175  # 4 parts per process: process 1 is never idle
    assert auto_part_size(1400, 1) == 350 and auto_part_size(10, 8) == 64 and auto_part_size(10**7, 8) == 4096


def test_token_balanced_parts_on_cranfield(cranfield_corpus, embedder_id):
    from hardneg.eval_config import ModelSpec
    from hardneg.evaluate import load_eval_model

    model = load_eval_model(ModelSpec("zero-shot", embedder_id), device="cpu")
    texts = [f"{t} {x}" for t, x in zip(cranfield_corpus["title"], cranfield_corpus["text"], strict=True)]
    lengths = token_lengths(model, texts)
    ordered = lengths[length_order(lengths)]
    for world in (2, 3, 4):
        size = auto_part_size(len(texts), world)
        costs = [int(ordered[p : p + size].sum()) for p in range(0, len(texts), size)]
        plan = assign_parts(costs, world)
        assert sorted(p for parts in plan for p in parts) == list(range(len(costs)))
        loads = [sum(costs[p] for p in parts) for parts in plan]
        assert max(loads) / min(loads) < 1.1, (world, loads)
        # what it replaces: round-robin over the same parts
        robin = [
            sum(costs[world * i + r] for i in range(len(costs)) if world * i + r < len(costs))
            for r in range(world)
        ]
        assert max(loads) <= max(robin)
    assert np.all(np.diff(ordered) <= 0)
