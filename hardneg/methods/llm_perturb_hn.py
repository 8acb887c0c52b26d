"""``llm_perturb_hn`` (CausalNeg, arXiv 2606.01304): the LLM rewrites the positive so that it no longer answers
the query while staying on topic; ``strength`` (one of ``PERTURB_STRENGTHS``) tells it how much to change (the
``{change}`` of its prompt, the packaged ``llm_perturb_hn`` template). Near-copies of the positive are still
rejected, but the copy check against the positive is off (a light rewrite shares most of its words by design).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset

from hardneg.generation import HygieneConfig
from hardneg.llm import Generator
from hardneg.methods import Method, MethodContext, register
from hardneg.methods.common import LLMOptions
from hardneg.negatives.llm import generate_negatives
from hardneg.options import ConfigError

PROMPT = "llm_perturb_hn"  # hardneg/prompts/llm_perturb_hn.yaml
INPUTS = ("query", "positive", "change")
# How much the positive is changed (the {change} of the prompt): controlled hardness.
PERTURB_STRENGTHS = {
    "light": "Change as little as possible: only the words that answer the query (a name, a number, a claim).",
    "medium": "Keep most sentences and terms, but replace the part that answers the query with related "
    "information that does not answer it.",
    "heavy": "Keep only the topic and its key terms; write new content that does not answer the query.",
}
PERTURB_HYGIENE = HygieneConfig(
    min_words=5, max_words=160, max_copy_overlap=1.01, max_positive_similarity=0.95
)


@dataclass
class LlmPerturbHnOptions(LLMOptions):
    INPUTS = INPUTS  # the placeholders run() fills (LLMOptions checks the prompt takes them)

    prompt: str = field(
        default=PROMPT,
        metadata={
            "help": "Prompt taking {query}, {positive} and {change}: a template name or a YAML file path."
        },
    )
    strength: str = field(
        default="medium", metadata={"help": "How much of the positive to change: light | medium | heavy."}
    )
    max_new_tokens: int = field(
        default=192, metadata={"bounds": (1, None), "help": "Token budget of a rewritten passage."}
    )

    def __post_init__(self) -> None:
        if self.strength not in PERTURB_STRENGTHS:
            raise ConfigError(
                f"llm_perturb_hn strength '{self.strength}'; fix: use one of {', '.join(PERTURB_STRENGTHS)}"
            )
        super().__post_init__()


def perturb_negatives(
    queries: Dataset,
    generator: Generator,
    *,
    strength: str = "medium",
    prompt: str | Path = PROMPT,
    method: str = "llm_perturb_hn",
    **kwargs,
) -> tuple[Dataset, dict]:
    """One rewritten positive per query (``generate_negatives``' other arguments pass through); ``strength``:
    a key of ``PERTURB_STRENGTHS`` or the instruction text itself. Records the strength in ``stats["params"]``."""
    triplets, stats = generate_negatives(
        queries,
        generator,
        method=method,
        prompt=prompt,
        inputs=INPUTS,
        extra={"change": PERTURB_STRENGTHS.get(strength, strength)},
        hygiene=kwargs.pop("hygiene", None) or PERTURB_HYGIENE,
        **kwargs,
    )
    stats["params"]["perturb_strength"] = strength
    stats["params"]["change"] = PERTURB_STRENGTHS.get(strength, strength)
    return triplets, stats


def run(ctx: MethodContext) -> tuple[Dataset, dict]:
    o = ctx.options
    return perturb_negatives(
        ctx.queries,
        ctx.generator(),
        strength=o["strength"],
        prompt=o["prompt"],
        method=ctx.name,
        cache_dir=ctx.cache_dir,
        seed=ctx.seed,
        max_new_tokens=o["max_new_tokens"],
        max_retries=o["reject_retries"],
    )


METHOD = register(
    Method(
        "llm_perturb_hn",
        "llm",
        "The LLM rewrote the positive passage so that it no longer answers the query while staying on the "
        "same topic (controlled perturbation, CausalNeg arXiv 2606.01304); `perturb_strength` in the stats "
        "says how much it was told to change.",
        run,
        options=LlmPerturbHnOptions,
        needs=("generator",),
        prompt_option="prompt",
        formerly={
            "llm_perturb_hn_prompt": "prompt",
            "perturb_strength": "strength",
            "perturb_max_new_tokens": "max_new_tokens",
        },
    )
)
