"""Bound every prompt in tokens: the passage part is cut so that prompt + output fit the model's context.

A passage is cut to ``max_passage_words`` words before it reaches a prompt, but a text without
whitespace (long CJK text, a base64 blob) is one "word": without a token bound such a prompt grows
without limit (a 200k-character passage kept a build at 15 GB RSS for minutes). ``fit_prompts`` renders
each prompt, counts its tokens and, when it is over the budget, cuts the longest free-text input
(``passage`` / ``positive``) by tokens and renders again. Truncations are counted and reported
(``truncated_prompts`` in the generation stats).

The budget is ``Generator.prompt_budget(max_new_tokens)``; the backend gives the context window
(``max_model_len()``, vLLM's name) and its tokenizer (``tokenize`` / ``detokenize``):

- ``transformers``: the model's tokenizer; context ``max_position_embeddings`` (else the tokenizer's
  ``model_max_length``, else 2048);
- ``llamacpp``: the GGUF's own tokenizer; context ``n_ctx``;
- ``vllm``: the engine's tokenizer; context ``max_model_len``;
- ``http`` (and any generator whose ``max_model_len()`` is None): no tokenizer is at hand, so tokens are
  estimated as characters / ``HTTP_CHARS_PER_TOKEN`` (2: English BPE averages ~4 characters per token, so
  this leaves room; CJK text is ~1 character per token or less, so set ``max_prompt_tokens`` to about half
  the server's context for such corpora); context ``max_prompt_tokens`` (default ``HTTP_DEFAULT_PROMPT_TOKENS``).

In every case ``max_prompt_tokens``, when set, caps the budget, and room is left for ``max_new_tokens``
plus ``TEMPLATE_MARGIN_TOKENS`` (a chat template adds role markers around the prompt).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

HTTP_CHARS_PER_TOKEN = 2
HTTP_DEFAULT_PROMPT_TOKENS = 4096
DEFAULT_CONTEXT_TOKENS = 2048
TEMPLATE_MARGIN_TOKENS = 32
# Inputs that may be cut (free text); queries are short and cutting them would change the task.
CUTTABLE_INPUTS = ("passage", "positive")


@dataclass
class PromptBudget:
    """The longest prompt allowed (``max_tokens``) and how to count and cut text in the backend's tokens:
    ``cut(text, drop)`` is ``text`` without its last ``drop`` tokens (the text is tokenized once)."""

    max_tokens: int
    count: Callable[[str], int]
    cut: Callable[[str, int], str]
    unit: str = "tokens"


def token_budget(
    max_tokens: int, tokenize: Callable[[str], Sequence[int]], detokenize: Callable[[Sequence[int]], str]
) -> PromptBudget:
    """A budget counted in a real tokenizer's tokens (``Generator.tokenize`` / ``detokenize``)."""

    def cut(text: str, drop: int) -> str:
        ids = tokenize(text)
        return detokenize(ids[: max(len(ids) - drop, 0)])

    return PromptBudget(max_tokens, lambda text: len(tokenize(text)), cut)


def chars_budget(max_tokens: int) -> PromptBudget:
    """A budget for backends without a tokenizer: a token is estimated as ``HTTP_CHARS_PER_TOKEN`` characters."""
    ratio = HTTP_CHARS_PER_TOKEN

    def count(text: str) -> int:
        return -(-len(text) // ratio)

    def cut(text: str, drop: int) -> str:
        return text[: max(count(text) - drop, 0) * ratio]

    return PromptBudget(max_tokens, count, cut, unit=f"tokens (chars / {ratio})")


def prompt_limit(config: Any, max_new_tokens: int, max_model_len: int | None) -> int:
    """The longest prompt in tokens for a ``GeneratorConfig`` when each output may take ``max_new_tokens`` and
    the model's context is ``max_model_len`` (None: unknown, the server holds it; module docstring)."""
    if config.enable_thinking:  # the reasoning block is generated inside the same context
        max_new_tokens += config.thinking_tokens
    if max_model_len is None:  # the server holds the context; max_prompt_tokens is the whole prompt budget
        limit = int(config.max_prompt_tokens or HTTP_DEFAULT_PROMPT_TOKENS)
    else:
        limit = max_model_len - max_new_tokens - TEMPLATE_MARGIN_TOKENS
        if config.max_prompt_tokens:
            limit = min(limit, int(config.max_prompt_tokens))
    if limit < 16:
        raise ValueError(
            f"no room for a prompt: the context leaves {limit} tokens after max_new_tokens={max_new_tokens}; "
            "fix: lower max_new_tokens or raise max_prompt_tokens / n_ctx"
        )
    return limit


def fit_prompts(
    items: Sequence[dict],
    render: Callable[..., str],
    inputs: Sequence[str],
    budget: PromptBudget,
) -> tuple[list[str], int]:
    """Render one prompt per item within ``budget``; returns (prompts, number of prompts cut).

    A prompt over the budget has its longest cuttable input (``CUTTABLE_INPUTS``) cut by the excess, then
    is rendered again (up to 4 rounds: token boundaries move when text is joined). A template whose fixed
    part alone exceeds the budget is an error.
    """
    out: list[str] = []
    truncated = 0
    for item in items:
        values = {k: item[k] for k in inputs}
        text = render(**values)
        # Every token is at least one UTF-8 byte, so a prompt this short needs no counting.
        if len(text.encode("utf-8")) <= budget.max_tokens:
            out.append(text)
            continue
        n = budget.count(text)
        cut_any = False
        for _ in range(4):
            if n <= budget.max_tokens:
                break
            field = max(
                (k for k in inputs if k in CUTTABLE_INPUTS), key=lambda k: len(values[k]), default=None
            )
            if field is None or not values[field]:
                raise ValueError(
                    f"prompt for item '{item.get('id')}' has {n} {budget.unit} without any passage text, over the "
                    f"budget of {budget.max_tokens}; fix: shorten the prompt template or raise max_prompt_tokens"
                )
            values[field] = budget.cut(values[field], n - budget.max_tokens + 8)
            text = render(**values)
            n = budget.count(text)
            cut_any = True
        if n > budget.max_tokens:
            raise ValueError(
                f"prompt for item '{item.get('id')}' still has {n} {budget.unit} after cutting its passage, over the "
                f"budget of {budget.max_tokens}; fix: shorten the prompt template or raise max_prompt_tokens"
            )
        truncated += cut_any
        out.append(text)
    return out, truncated
