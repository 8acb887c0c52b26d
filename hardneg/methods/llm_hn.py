"""``llm_hn``: the LLM writes the hard negative from the query alone (the paper's corpus-free method,
"Don't Retrieve, Generate", arXiv 2504.21015). Prompt: the packaged ``llm_hn`` template."""

from __future__ import annotations

from dataclasses import dataclass, field

from datasets import Dataset

from hardneg.methods import Method, MethodContext, register
from hardneg.methods.common import LLMOptions, run_llm

PROMPT = "llm_hn"  # hardneg/prompts/llm_hn.yaml (versioned; its hash keys the stage)
INPUTS = ("query",)


@dataclass
class LlmHnOptions(LLMOptions):
    INPUTS = INPUTS  # the placeholders run() fills (LLMOptions checks the prompt takes them)

    prompt: str = field(
        default=PROMPT,
        metadata={"help": "Prompt taking {query}: a packaged template name or a YAML file path."},
    )


def run(ctx: MethodContext) -> tuple[Dataset, dict]:
    return run_llm(ctx, INPUTS)


METHOD = register(
    Method(
        "llm_hn",
        "llm",
        "The LLM wrote the hard negative from the query alone (the paper's corpus-free method).",
        run,
        options=LlmHnOptions,
        needs=("generator",),
        prompt_option="prompt",
        formerly={"llm_hn_prompt": "prompt", "negative_max_new_tokens": "max_new_tokens"},
    )
)
