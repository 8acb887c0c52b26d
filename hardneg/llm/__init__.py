"""Text generation backends behind one small interface.

``load_generator(GeneratorConfig(...))`` returns a ``Generator`` with

- ``generate(prompts, *, chat, stop, max_new_tokens, temperature, top_p, seeds) -> list[Generation]``
  (resolves the per-call overrides once, then calls the backend's ``_generate``)
- ``info() -> dict``: model id, backend and the settings recorded as provenance
- ``cache_settings() -> dict``: the settings that change outputs (the generation cache key); batch size,
  concurrency, URLs and timeouts are left out because they do not change what is generated.
- ``prompt_budget(max_new_tokens) -> PromptBudget``: how long a prompt may be, in the model's tokens where the
  backend has them (``max_model_len``, ``tokenize``, ``detokenize``; ``hardneg.llm.bounding``).

Backends:

- ``transformers`` (default): local batched generation with left padding, KV cache and a shared-prefix KV
  cache (few-shot prompts share a long prefix that is computed once per call); greedy or seeded
  sampling (one random generator per row, so a row's output does not depend on its batch); bf16 on
  GPU; GGUF files via ``gguf_file`` (dequantised once, cached on disk keyed by the file's SHA-256).
- ``http``: TGI and OpenAI-compatible servers (vLLM, llama.cpp server, SGLang, Ollama, ``transformers
  serve``, hosted APIs) through ``huggingface_hub.AsyncInferenceClient``: bounded concurrency,
  per-request timeout, retries with exponential backoff and jitter, several URLs used round-robin.
- ``vllm``: vLLM's offline engine (``pip install hardneg[vllm]``), imported only when chosen.
- Reasoning models: every backend sends the chat template the Qwen3-style switch ``enable_thinking``
  (off unless ``enable_thinking=True``; not sent at all with ``send_chat_template_kwargs=False``, for hosted
  APIs that reject unknown request fields) and strips any ``<think>`` block before the output reaches
  hygiene, recording the characters removed in ``Generation.reasoning_chars`` (``strip_reasoning``).
- ``llamacpp``: llama.cpp on the GGUF itself (``pip install hardneg[llamacpp]``), imported only when chosen:
  quantised CPU kernels, one prompt at a time with the shared few-shot prefix kept in the KV cache.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, NamedTuple

from hardneg.assets import EMBEDDED_LLM
from hardneg.llm.bounding import PromptBudget, chars_budget, prompt_limit, token_budget
from hardneg.options import check_fields
from hardneg.redact import UrlError, parse_url, redact_url

BACKENDS = ("transformers", "http", "vllm", "llamacpp")
RUN_ONLY_SETTINGS = ("urls", "concurrency", "timeout", "max_retries", "api_key_env", "batch_size", "device")


@dataclass
class GeneratorConfig:
    """Which LLM writes queries and negatives, and how it is run."""

    model: str = field(
        default=EMBEDDED_LLM,
        metadata={
            "help": "Generator LM: embedded:smollm2 (offline default), a Hub id or local folder; for "
            "backend=http the model name the server expects (vLLM: the served name)."
        },
    )
    backend: Literal["transformers", "http", "vllm", "llamacpp"] = field(
        default="transformers",
        metadata={
            "help": "transformers (local), http (TGI / OpenAI-compatible servers), vllm, or llamacpp (GGUF on CPU)."
        },
    )
    urls: list[str] = field(
        default_factory=list,
        metadata={"help": "backend=http: server base URLs (e.g. http://gpu1:8080), used round-robin."},
    )
    api: Literal["chat", "tgi"] = field(
        default="chat",
        metadata={
            "help": "backend=http: 'chat' = /v1/chat/completions (vLLM, llama.cpp, SGLang, Ollama, TGI, "
            "transformers serve); 'tgi' = TGI's raw text-generation route (completion prompts sent verbatim)."
        },
    )
    api_key_env: str = field(
        default="HARDNEG_API_KEY",
        metadata={
            "help": "backend=http: name of the environment variable holding the API key (never logged)."
        },
    )
    gguf_file: str | None = field(
        default=None,
        metadata={"help": "GGUF file name inside `model` (a folder or Hub repo; transformers and llamacpp)."},
    )
    dtype: str = field(
        default="auto", metadata={"help": "auto (bf16 on CUDA, else float32), float32, bfloat16, float16."}
    )
    device: str | None = field(
        default=None, metadata={"help": "cpu, cuda, cuda:1, mps; default: best available."}
    )
    batch_size: int = field(
        default=16, metadata={"bounds": (1, None), "help": "Local backends: prompts per forward batch."}
    )
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "bounds": (1, None),
            "help": "Token budget per output; default: the task's (queries 32, negatives 96).",
        },
    )
    temperature: float = field(
        default=0.0,
        metadata={"bounds": (0, None), "help": "0 = greedy decoding; > 0 samples with a per-item seed."},
    )
    top_p: float = field(
        default=1.0, metadata={"bounds": (0, 1), "help": "Nucleus sampling mass when temperature > 0."}
    )
    seed: int = field(
        default=42, metadata={"help": "Base seed; every item gets its own seed derived from it."}
    )
    concurrency: int = field(
        default=8,
        metadata={
            "bounds": (1, None),
            "help": "backend=http: requests in flight at once (all URLs together).",
        },
    )
    timeout: float = field(
        default=120.0,
        metadata={"bounds": (0, None), "help": "backend=http: seconds per request before it is retried."},
    )
    max_retries: int = field(
        default=5,
        metadata={"help": "backend=http: retries per request on 429/5xx/timeouts/refused connections."},
    )

    enable_thinking: bool = field(
        default=False,
        metadata={
            "help": "Let reasoning models think (Qwen3 and others whose chat template reads enable_thinking). "
            "Off by default: the switch is sent to every chat template (chat_template_kwargs); any reasoning "
            "block that still appears is stripped before hygiene either way."
        },
    )
    send_chat_template_kwargs: bool = field(
        default=True,
        metadata={
            "help": "Send the thinking switch to the chat template (HTTP: the request field chat_template_kwargs; "
            "local backends: the template variable enable_thinking). false (--no_send_chat_template_kwargs) "
            "sends nothing, for hosted APIs that answer 400 to unknown request fields: the model's own default "
            "decides whether it thinks, enable_thinking then only sets the budget and when stop strings apply, "
            "and reasoning blocks are still stripped and counted."
        },
    )
    thinking_tokens: int = field(
        default=1024,
        metadata={
            "help": "Extra token budget for the reasoning block when enable_thinking is on (or when a model "
            "thinks although asked not to)."
        },
    )

    n_ctx: int = field(
        default=4096,
        metadata={
            "bounds": (16, None),
            "help": "backend=llamacpp: context window in tokens; prompt + new tokens must fit.",
        },
    )
    max_prompt_tokens: int | None = field(
        default=None,
        metadata={
            "bounds": (16, None),
            "help": "Longest prompt in tokens; a longer passage is cut to fit (counted in the stats as "
            "'truncated_prompts'). Default: the model's context minus the output budget (local backends); "
            "backend=http: 4096, counted as characters / 2 (see docs/errors.md) since no tokenizer is at hand.",
        },
    )

    def output_settings(self) -> dict[str, Any]:
        """The settings that can change what is generated (a build stage key): everything but how the
        work is run (``RUN_ONLY_SETTINGS``: URLs, concurrency, batch size, device, timeouts, retries, key)."""
        settings = {k: v for k, v in asdict(self).items() if k not in RUN_ONLY_SETTINGS}
        # Fields at their default are left out: keys stay those of runs made before the fields existed.
        if settings.get("max_prompt_tokens") is None:
            settings.pop("max_prompt_tokens", None)
        if settings.get("send_chat_template_kwargs", True):
            settings.pop("send_chat_template_kwargs", None)
        return settings

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"unknown backend '{self.backend}'; fix: use one of {', '.join(BACKENDS)}")
        if self.backend == "http" and not self.urls:
            raise ValueError("backend=http needs at least one server URL; fix: pass --urls http://HOST:PORT")
        for n, url in enumerate(self.urls, 1):  # parsed once, now: its secrets are scrubbed from all output
            try:
                parse_url(url)
            except UrlError as err:  # not shown: what cannot be parsed cannot be redacted
                raise ValueError(
                    f"--urls entry {n} is not a server URL ({err}); fix: pass e.g. http://127.0.0.1:8080"
                ) from None
        if self.api not in ("chat", "tgi"):
            raise ValueError(f"unknown api '{self.api}'; fix: use chat or tgi")
        if self.batch_size < 1 or self.concurrency < 1 or self.n_ctx < 16:
            raise ValueError(
                "batch_size and concurrency must be >= 1 and n_ctx >= 16; fix: pass positive values"
            )
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(
                "temperature must be >= 0 and 0 < top_p <= 1; fix: correct the sampling settings"
            )
        if (self.max_new_tokens is not None and self.max_new_tokens < 1) or (
            self.max_prompt_tokens is not None and self.max_prompt_tokens < 16
        ):
            raise ValueError(
                "max_new_tokens must be >= 1 and max_prompt_tokens >= 16; fix: pass larger values or leave them unset"
            )
        if self.thinking_tokens < 0:
            raise ValueError("thinking_tokens must be >= 0; fix: pass 0 or more (--thinking_tokens)")
        if self.timeout <= 0 or self.max_retries < 0:
            raise ValueError(
                "timeout must be > 0 and max_retries >= 0; fix: correct --timeout / --max_retries"
            )
        # last, after the checks with their own messages: the same rule as parse() for configs made in Python
        check_fields(self)

    def recorded(self) -> dict[str, Any]:
        """The settings as written to stats, stage files and cards: server URLs without credentials."""
        return asdict(self) | {"urls": [redact_url(u) for u in self.urls]}

    def preflight(self) -> None:
        """Checks run before any model loads or item is generated: every HTTP server answers a connection
        (probed once per process: the HTTP backend calls this too and finds the servers already reached)."""
        if self.backend == "http":
            from hardneg.llm.http_backend import check_reachable

            for url in self.urls:
                check_reachable(url.rstrip("/"), timeout=min(5.0, self.timeout))


DEFAULT_MAX_NEW_TOKENS = 64
EMPTY_REPLY = "empty reply"  # Generation.fault: the server answered 200 with no content


def common_prefix(ids: list[list[int]], min_suffix: int = 1) -> list[int]:
    """The longest token prefix shared by every prompt, leaving each prompt at least ``min_suffix`` tokens of
    its own (the local backends compute this prefix's KV cache once per call)."""
    n_prefix = max(min(len(x) for x in ids) - min_suffix, 0)
    for x in ids[1:]:
        n_prefix = next((i for i in range(n_prefix) if x[i] != ids[0][i]), n_prefix)
    return ids[0][:n_prefix]


THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_THINK_BLOCK = re.compile(re.escape(THINK_OPEN) + ".*?" + re.escape(THINK_CLOSE), re.DOTALL)


def strip_reasoning(text: str) -> tuple[str, int]:
    """Remove reasoning from a raw reply; returns ``(answer, characters removed)``.

    Handles complete ``<think>...</think>`` blocks, a reply that starts inside the block because the chat
    template put ``<think>`` in the prompt (text up to a ``</think>`` without an opener), and an unterminated
    block (``<think>`` to the end: the reply was all reasoning). Servers that parse reasoning themselves
    (vLLM ``--reasoning-parser``) return the answer alone, which passes unchanged."""
    answer = _THINK_BLOCK.sub("", text)
    if THINK_CLOSE in answer:
        answer = answer.split(THINK_CLOSE)[-1]
    if THINK_OPEN in answer:
        answer = answer.split(THINK_OPEN)[0]
    if len(answer) == len(text):
        return text, 0
    return answer.lstrip(), len(text) - len(answer.lstrip())


def apply_stop(text: str, stop: list[str]) -> str:
    """``text`` cut at the first of the stop strings (they are not kept)."""
    hits = [text.find(s) for s in stop if s and s in text]
    return text[: min(hits)] if hits else text


def rate_bar(total: int, desc: str):
    """A progress bar that reports rates (requests/s; tokens/s in the postfix via ``show_tokens``), not a
    remaining-time estimate: batched and concurrent generation completes in bursts, so a per-item ETA jumps
    between seconds and hours."""
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="req",
        smoothing=0,  # the rate is the average since the start, steady across bursts
        bar_format="{desc}: {n_fmt}/{total_fmt} [{elapsed}, {rate_fmt}{postfix}]",
    )


def show_tokens(bar, completion_tokens: int) -> None:
    """Put the generated tokens/s since the bar started into its postfix."""
    elapsed = bar.format_dict["elapsed"]
    if elapsed > 0:
        bar.set_postfix_str(f"{completion_tokens / elapsed:.1f} tok/s", refresh=False)


@dataclass
class Generation:
    """One completion and what it cost. ``latency_s`` is the request time (HTTP) or the batch time
    divided by its rows (local batched backends), so summing it gives the generation wall time."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str = "stop"
    reasoning_chars: int = 0  # characters of reasoning (<think> blocks) stripped from the raw reply
    # A reply that is a fault of the server, not the model's answer (EMPTY_REPLY: HTTP 200 with no content
    # that was not cut by the budget); never cached, see hardneg.generation.
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sampling(NamedTuple):
    """Per-call sampling settings, resolved against the config the same way for every backend."""

    max_new_tokens: int
    temperature: float
    top_p: float
    seeds: list[int]  # one per prompt


class Generator:
    """Base of the backends. ``generate`` is the one public entry: it resolves per-call overrides against
    the config (``max_new_tokens`` -> config -> ``DEFAULT_MAX_NEW_TOKENS``; seeds default to
    ``config.seed + i``) and hands them to the backend's ``_generate``."""

    config: GeneratorConfig

    def generate(
        self,
        prompts: list[str],
        *,
        chat: bool = False,
        stop: list[str] | None = None,
        max_new_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        seeds: list[int] | None = None,
        progress: bool = False,
    ) -> list[Generation]:
        """Generate one completion per prompt (same order as ``prompts``), reasoning blocks stripped."""
        if not prompts:
            return []
        c = self.config
        sampling = Sampling(
            max_new_tokens or c.max_new_tokens or DEFAULT_MAX_NEW_TOKENS,
            c.temperature if temperature is None else temperature,
            c.top_p if top_p is None else top_p,
            list(seeds) if seeds is not None else [c.seed + i for i in range(len(prompts))],
        )
        return self._generate_without_reasoning(list(prompts), chat, list(stop or []), sampling, progress)

    def _generate_without_reasoning(
        self, prompts: list[str], chat: bool, stop: list[str], sampling: Sampling, progress: bool
    ) -> list[Generation]:
        """``_generate`` with reasoning handled (see ``strip_reasoning``). With thinking on, stop strings are
        applied only after the reasoning block is stripped (a newline stop would otherwise cut every reply to
        ``<think>``) and the budget grows by ``thinking_tokens``. With thinking off, rows whose reply was cut
        inside a reasoning block anyway (a template without the switch) are generated again that way."""
        thinking = sampling._replace(max_new_tokens=sampling.max_new_tokens + self.config.thinking_tokens)
        if self.config.enable_thinking:
            outs = self._generate(prompts, chat=chat, stop=[], sampling=thinking, progress=progress)
        else:
            outs = self._generate(prompts, chat=chat, stop=stop, sampling=sampling, progress=progress)
            cut = [
                i
                for i, o in enumerate(outs)
                if o.text.lstrip().startswith(THINK_OPEN) and THINK_CLOSE not in o.text
            ]
            if cut:
                again = self._generate(
                    [prompts[i] for i in cut], chat=chat, stop=[], progress=progress,
                    sampling=thinking._replace(seeds=[sampling.seeds[i] for i in cut]),
                )  # fmt: skip
                for i, o in zip(cut, again, strict=True):
                    outs[i] = o
        for o in outs:
            answer, stripped = strip_reasoning(o.text)
            o.reasoning_chars += stripped
            o.text = apply_stop(answer, stop)
            if o.text != answer:  # a stop string ended the answer (the budget did not)
                o.finish_reason = "stop"
        return outs

    def chat_template_kwargs(self) -> dict[str, Any]:
        """Extra variables for the chat template: the Qwen3-style thinking switch (templates that do not read
        it ignore it); empty with ``send_chat_template_kwargs=False`` (HTTP then sends no such field)."""
        if not self.config.send_chat_template_kwargs:
            return {}
        return {"enable_thinking": self.config.enable_thinking}

    def thinking_settings(self) -> dict[str, Any]:
        """The reasoning settings that change outputs, for ``cache_settings`` (empty by default, so caches
        written before the switch existed stay valid)."""
        c = self.config
        on = {"enable_thinking": True, "thinking_tokens": c.thinking_tokens} if c.enable_thinking else {}
        return on | ({} if c.send_chat_template_kwargs else {"send_chat_template_kwargs": False})

    def prompt_budget(self, max_new_tokens: int) -> PromptBudget:
        """How long a prompt may be when each output may take ``max_new_tokens`` (``hardneg.llm.bounding``):
        counted in the model's tokens when the backend knows its context window, else estimated from
        characters."""
        context = self.max_model_len()
        limit = prompt_limit(self.config, max_new_tokens, context)
        if context is None:
            return chars_budget(limit)
        return token_budget(limit, self.tokenize, self.detokenize)

    def max_model_len(self) -> int | None:
        """The model's context window in tokens (vLLM's name); None when the backend does not hold the model
        (an HTTP server). Backends that return a number also implement ``tokenize`` and ``detokenize``."""
        return None

    def tokenize(self, text: str) -> list[int]:
        """The model's token ids for ``text``, without special tokens."""
        raise NotImplementedError(f"{type(self).__name__} has no tokenizer")

    def detokenize(self, ids: list[int]) -> str:
        """The text of token ids (special tokens skipped)."""
        raise NotImplementedError(f"{type(self).__name__} has no tokenizer")

    def _generate(
        self, prompts: list[str], *, chat: bool, stop: list[str], sampling: Sampling, progress: bool
    ) -> list[Generation]:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        raise NotImplementedError

    def cache_settings(self) -> dict[str, Any]:
        raise NotImplementedError


def load_generator(config: GeneratorConfig) -> Generator:
    """Build the backend named by ``config.backend``; heavy imports happen only for the chosen one."""
    if config.backend == "transformers":
        from hardneg.llm.transformers_backend import TransformersGenerator

        return TransformersGenerator(config)
    if config.backend == "http":
        from hardneg.llm.http_backend import HttpGenerator

        return HttpGenerator(config)
    if config.backend == "vllm":
        from hardneg.llm.vllm_backend import VllmGenerator

        return VllmGenerator(config)
    if config.backend == "llamacpp":
        from hardneg.llm.llamacpp_backend import LlamaCppGenerator

        return LlamaCppGenerator(config)
    raise ValueError(f"unknown backend '{config.backend}'; fix: use one of {', '.join(BACKENDS)}")


__all__ = [
    "BACKENDS",
    "EMPTY_REPLY",
    "Generation",
    "Generator",
    "GeneratorConfig",
    "apply_stop",
    "load_generator",
    "strip_reasoning",
]
