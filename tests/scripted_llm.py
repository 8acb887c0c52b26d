"""A scripted stand-in for the LLM in build tests: deterministic text, counts its prompts."""

from __future__ import annotations

from hardneg.generation import Generation
from hardneg.llm import Generator, GeneratorConfig

WORDS = "wing lift drag flow boundary layer pressure shock heat nozzle".split()


class ScriptedGenerator(Generator):
    """Deterministic text from the prompt; counts prompts so a test sees what was (re)generated."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.config = config
        self.prompts = 0

    def _generate(self, prompts, *, chat, stop, sampling, progress):
        self.prompts += len(prompts)
        outs = []
        for p in prompts:
            h = sum(map(ord, p[-60:]))
            n = 3 if "Query:" in p[-20:] or p.rstrip().endswith("Query:") else 9
            words = [WORDS[(h + 7 * i) % len(WORDS)] for i in range(n)]
            if n == 3:  # distinct query texts: rows with one query text share their positives (mining rule)
                words.append(f"q{h}")
            outs.append(Generation(" ".join(words), 10, n, 0.001))
        return outs

    def info(self):
        return {"model": "scripted", "backend": "scripted"}

    def cache_settings(self):
        return {"model": "scripted"}


def scripted(**kw) -> tuple[GeneratorConfig, ScriptedGenerator]:
    """A generator config (model "scripted") and its scripted generator."""
    cfg = GeneratorConfig(model="scripted", **kw)
    return cfg, ScriptedGenerator(cfg)


class OverlapScorer:
    """A cheap joint scorer for build tests: shared words, plus a small deterministic tie-breaker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.score_name = f"word overlap ({name})"
        self.calls = 0

    def score(self, queries, passages, batch_size: int = 16):
        import zlib

        import numpy as np

        self.calls += len(queries)
        out = []
        for q, p in zip(queries, passages, strict=True):
            overlap = len(set(q.lower().split()) & set(p.lower().split()))
            out.append(overlap + (zlib.crc32(f"{self.name}|{q}|{p}".encode()) % 10_000) / 100_000)
        return np.asarray(out, dtype=np.float64)


def patch_scorers(monkeypatch) -> dict[str, OverlapScorer]:
    """Make the build load ``OverlapScorer``s instead of real models; returns them by name."""
    import hardneg.build.stages

    loaded: dict[str, OverlapScorer] = {}

    def fake_load(name, **kwargs):
        return loaded.setdefault(name, OverlapScorer(name))

    monkeypatch.setattr(hardneg.build.stages, "load_scorer", fake_load)
    return loaded


class ScriptedJudge(ScriptedGenerator):
    """Answers the fn_judge prompt: Yes when the judged passage contains ``marker``."""

    def __init__(self, config: GeneratorConfig, marker: str = "ANSWER") -> None:
        super().__init__(config)
        self.marker = marker

    def _generate(self, prompts, *, chat, stop, sampling, progress):
        self.prompts += len(prompts)
        passages = [p.rsplit("Passage:", 1)[1] for p in prompts]
        return [Generation(" Yes" if self.marker in p else " No", 10, 1, 0.001) for p in passages]


class RecordingGenerator(ScriptedGenerator):
    """A scripted generator that keeps every prompt it was given."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__(config)
        self.seen: list[str] = []

    def _generate(self, prompts, *, chat, stop, sampling, progress):
        self.seen.extend(prompts)
        return super()._generate(prompts, chat=chat, stop=stop, sampling=sampling, progress=progress)
