"""vLLM's offline engine for GPU batch runs (``pip install hardneg[vllm]``).

Imported only when ``backend="vllm"`` is chosen. vLLM schedules all prompts of a call with continuous
batching and automatic prefix caching (the few-shot prefix is computed once); per-request seeds make
sampled outputs reproducible. Greedy outputs can differ slightly from the transformers backend
(different kernels), which is why the backend is part of the generation cache key.
"""

from __future__ import annotations

import time
from typing import Any

from hardneg.assets import resolve_llm
from hardneg.llm import Generation, Generator, GeneratorConfig, Sampling


class VllmGenerator(Generator):
    def __init__(self, config: GeneratorConfig):
        try:
            from vllm import LLM
        except ImportError:
            raise RuntimeError(
                "backend=vllm needs vLLM; fix: pip install 'hardneg[vllm]' (Linux + CUDA GPU)"
            ) from None
        self.config = config
        ref = resolve_llm(config.model, config.gguf_file)
        self.model_name = ref.name
        model = f"{ref.name_or_path}/{ref.gguf_file}" if ref.gguf_file else ref.name_or_path
        dtype = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(
            config.dtype, config.dtype
        )
        self.llm = LLM(model=model, dtype=dtype, seed=config.seed, enable_prefix_caching=True)

    def cache_settings(self) -> dict[str, Any]:
        c = self.config
        return (
            {"model": self.model_name, "backend": "vllm", "dtype": c.dtype}
            | ({"max_new_tokens": c.max_new_tokens} if c.max_new_tokens else {})
            | self.thinking_settings()
        )

    def info(self) -> dict[str, Any]:
        import vllm

        return self.cache_settings() | {"vllm_version": vllm.__version__}

    def max_model_len(self) -> int:
        return int(self.llm.llm_engine.model_config.max_model_len)

    def tokenize(self, text: str) -> list[int]:
        return self.llm.get_tokenizer()(text, add_special_tokens=False)["input_ids"]

    def detokenize(self, ids: list[int]) -> str:
        return self.llm.get_tokenizer().decode(ids, skip_special_tokens=True)

    def _generate(
        self, prompts: list[str], *, chat: bool, stop: list[str], sampling: Sampling, progress: bool
    ) -> list[Generation]:
        from vllm import SamplingParams

        max_new, temperature, top_p, seeds = sampling
        params = [
            SamplingParams(
                temperature=temperature,
                top_p=top_p if temperature > 0 else 1.0,
                max_tokens=max_new,
                stop=list(stop),
                seed=int(s),
            )
            for s in seeds
        ]
        start = time.perf_counter()
        if chat:
            outs = self.llm.chat(
                [[{"role": "user", "content": p}] for p in prompts],
                params,
                use_tqdm=progress,
                chat_template_kwargs=self.chat_template_kwargs() or None,
            )
        else:
            outs = self.llm.generate(prompts, params, use_tqdm=progress)
        per_item = (time.perf_counter() - start) / max(len(prompts), 1)
        return [
            Generation(
                o.outputs[0].text,
                len(o.prompt_token_ids or []),
                len(o.outputs[0].token_ids),
                per_item,
                "length" if o.outputs[0].finish_reason == "length" else "stop",
            )
            for o in outs
        ]
