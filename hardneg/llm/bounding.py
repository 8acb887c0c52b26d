"""Bound every prompt in tokens: the passage part is cut so that prompt + output fit the model's context.

A passage is cut to ``max_passage_words`` words before it reaches a prompt, but a text without
whitespace (long CJK text, a base64 blob) is one "word": without a token bound such a prompt grows
without limit (a 200k-character passage kept a build at 15 GB RSS for minutes). ``fit_prompts`` renders
each prompt, counts its tokens and, when it is over the budget, cuts the longest free-text input
(``passage`` / ``positive``) by tokens and renders again. Truncations are counted and reported
(``truncated_prompts`` in the generation stats).

The budget (``prompt_budget``) comes from the backend:

- ``transformers``: the model's tokenizer; context ``max_position_embeddings`` (else the tokenizer's
  ``model_max_length``, else 2048);
- ``llamacpp``: the GGUF's own tokenizer; context ``n_ctx``;
- ``vllm``: the engine's tokenizer; context ``max_model_len``;
- ``http`` (and any generator without one of these tokenizers): no tokenizer is at hand, so tokens are estimated as characters / ``HTTP_CHARS_PER_TOKEN``
  (2: English BPE averages ~4 characters per token, so this leaves room; CJK text is ~1 character per
  token or less, so set ``max_prompt_tokens`` to about half the server's context for such corpora);
  context ``max_prompt_tokens`` (default ``HTTP_DEFAULT_PROMPT_TOKENS``).

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
    """The longest prompt allowed (``max_tokens``) and how to count and cut text in the backend's tokens."""

    max_tokens: int
    count: Callable[[str], int]
    cut: Callable[[str, int], str]
    unit: str = "tokens"


def _tokenizer_budget(tokenizer: Any, limit: int) -> PromptBudget:
    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def cut(text: str, n: int) -> str:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"][: max(n, 0)]
        return tokenizer.decode(ids, skip_special_tokens=True)

    return PromptBudget(limit, count, cut)


def _llamacpp_budget(llm: Any, limit: int) -> PromptBudget:
    def tokens(text: str) -> list[int]:
        return llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def cut(text: str, n: int) -> str:
        return llm.detokenize(tokens(text)[: max(n, 0)]).decode("utf-8", errors="ignore")

    return PromptBudget(limit, lambda t: len(tokens(t)), cut)


def _kind(generator: Any) -> str:
    """Which tokenizer the loaded generator offers: its backend's, or none (HTTP servers, custom generators)."""
    backend = generator.config.backend
    if backend in ("llamacpp", "vllm") and hasattr(generator, "llm"):
        return backend
    if backend == "transformers" and hasattr(generator, "tokenizer") and hasattr(generator, "model"):
        return backend
    return "chars"


def _context_tokens(generator: Any, kind: str) -> int:
    """The model's context window in tokens, from what the loaded backend knows."""
    if kind == "llamacpp":
        return int(generator.config.n_ctx)
    if kind == "vllm":
        return int(generator.llm.llm_engine.model_config.max_model_len)
    n = getattr(generator.model.config, "max_position_embeddings", None)
    if not n:
        n = getattr(generator.tokenizer, "model_max_length", None)
        n = n if n and n < 10**7 else DEFAULT_CONTEXT_TOKENS  # "no limit" is stored as a huge int
    return int(n)


def prompt_budget(generator: Any, max_new_tokens: int) -> PromptBudget:
    """The prompt budget of ``generator`` when each output may take ``max_new_tokens`` (module docstring)."""
    c = generator.config
    if (
        c.enable_thinking
    ):  # the reasoning block is generated inside the same context (generate_without_reasoning)
        max_new_tokens += c.thinking_tokens
    kind = _kind(generator)
    if kind == "chars":  # the server holds the context; max_prompt_tokens is the whole prompt budget
        limit = int(c.max_prompt_tokens or HTTP_DEFAULT_PROMPT_TOKENS)
    else:
        limit = _context_tokens(generator, kind) - max_new_tokens - TEMPLATE_MARGIN_TOKENS
        if c.max_prompt_tokens:
            limit = min(limit, int(c.max_prompt_tokens))
    if limit < 16:
        raise ValueError(
            f"no room for a prompt: the context leaves {limit} tokens after max_new_tokens={max_new_tokens}; "
            "fix: lower max_new_tokens or raise max_prompt_tokens / n_ctx"
        )
    if kind == "transformers":
        return _tokenizer_budget(generator.tokenizer, limit)
    if kind == "vllm":
        return _tokenizer_budget(generator.llm.get_tokenizer(), limit)
    if kind == "llamacpp":
        return _llamacpp_budget(generator.llm, limit)
    ratio = HTTP_CHARS_PER_TOKEN
    return PromptBudget(
        limit, lambda t: -(-len(t) // ratio), lambda t, n: t[: max(n, 0) * ratio], unit="tokens (chars / 2)"
    )


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
            have = budget.count(values[field])
            values[field] = budget.cut(values[field], have - (n - budget.max_tokens) - 8)
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
