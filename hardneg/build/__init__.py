"""The build stage: corpus -> LLM queries -> hard negatives by each method -> Hub-ready dataset folder.

``build()`` runs the pipeline's named steps, in this order:

1. ``load_inputs``: the corpus, the mining pool (minus the evaluation set's judged documents when asked,
   via ``hardneg.decontaminate``) and the seeded passage sample;
2. ``make_queries``: one LLM query per sampled passage, then ``decontaminate_queries`` drops the
   evaluation set's query texts;
3. ``make_methods``: each registered method (``hardneg.methods``) on the same queries, configs a
   derived method reads (``hybrid_hn``'s sources) first;
4. ``pair_configs``: by default only the query ids present in every config are kept (a paired
   comparison), the rows dropped are counted per config;
5. ``false_negative_stats``: one scorer (and optionally an independent judge) rates every config's rows;
6. ``collect_stats`` + the folder (``hardneg.dataset_folder.save_dataset_folder``).

Files: ``config`` (``BuildConfig``), ``stages`` (the stage cache, loaded models, the folder record), ``steps``
(steps 1-4 and 6), ``scoring`` (repair and false-negative scores, steps 3b, 3c, 5), ``shards`` (a sharded
build), ``pipeline`` (``build``).

Every finished stage is checkpointed under ``<output_dir>/stages/<name>/``, keyed only by its own inputs:
the queries by the corpus sample, the prompt, its budget and the generator's output settings
(``GeneratorConfig.output_settings``: URLs, concurrency, batch size and device are left out); a method by
the queries, its own options (its options dataclass, with the ``methods:`` overrides) and what it needs
(the generator's output settings only for LLM methods). A rerun of the same command reuses finished
stages, and LLM generation resumes item by item from its own cache, so a crash loses nothing computed.
"""

from __future__ import annotations

from hardneg.build.config import BuildConfig
from hardneg.build.pipeline import build
from hardneg.build.shards import share_pool
from hardneg.build.steps import load_inputs, sample_passages

__all__ = ["BuildConfig", "build", "load_inputs", "sample_passages", "share_pool"]
