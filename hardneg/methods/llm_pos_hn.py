"""``llm_pos_hn``: the LLM writes the hard negative from the query and its positive passage.
Prompt: the packaged ``llm_pos_hn`` template."""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

from hardneg.methods import Method, MethodContext, register
from hardneg.methods.common import LLMOptions, run_llm

PROMPT = "llm_pos_hn"  # hardneg/prompts/llm_pos_hn.yaml
INPUTS = ("query", "positive")


@dataclass
class LlmPosHnOptions(LLMOptions):
    INPUTS = INPUTS  # the placeholders run() fills (LLMOptions checks the prompt takes them)

    prompt: str = field(
        default=PROMPT,
        metadata={
            "help": "Prompt taking {query} and {positive}: a packaged template name or a YAML file path."
        },
    )


def run(ctx: MethodContext) -> tuple[Dataset, dict]:
    return run_llm(ctx, INPUTS)


METHOD = register(
    Method(
        "llm_pos_hn",
        "llm",
        "The LLM wrote the hard negative from the query and its positive passage.",
        run,
        options=LlmPosHnOptions,
        needs=("generator",),
        prompt_option="prompt",
        formerly={"llm_pos_hn_prompt": "prompt", "negative_max_new_tokens": "max_new_tokens"},
    )
)
