"""A scripted stand-in for the LLM in build tests: deterministic text, counts its prompts."""

from __future__ import annotations

from hardneg.generation import Generation
from hardneg.llm import Generator, GeneratorConfig

WORDS = "wing lift drag flow boundary layer pressure shock heat nozzle".split()


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
