"""Local batched generation with transformers.

Speed comes from three things, all inside ``model.generate``:

1. Batching with left padding, prompts sorted by length so batches waste little padding.
2. A shared-prefix KV cache: the longest token prefix common to all prompts of a call (the
   instructions + few-shot examples) is run through the model once; each batch starts from a copy
   of that cache, so only the passage-specific suffix is prefilled. Padding goes between the prefix
   and the suffix; the attention mask hides it and position ids follow the mask, so every row sees
   exactly the positions it would see alone.
3. Early stop on the template's stop strings (a query is one line).

Greedy outputs therefore do not depend on the batch size. Sampling uses one ``torch.Generator`` per
row seeded with the item's seed (``_RowSampler``), so sampled outputs do not depend on batching either.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import LogitsProcessor, LogitsProcessorList

from hardneg.assets import best_device, load_causal_lm, resolve_llm
from hardneg.llm import Generation, GeneratorConfig, resolve_sampling


def cache_root() -> Path:
    """Where hardneg keeps derived files (dequantised GGUF copies): $HARDNEG_CACHE or ~/.cache/hardneg."""
    base = (
        os.environ.get("HARDNEG_CACHE")
        or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "hardneg"
    )
    return Path(base)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def dequantised_gguf_folder(name_or_path: str, gguf_file: str) -> Path:
    """Dequantise a local GGUF once and keep a safetensors copy keyed by the file's SHA-256.

    Loading a GGUF through transformers dequantises every tensor (~20 s for the embedded model); the
    cached copy loads in a few seconds. Remote GGUFs are left to transformers (returns the GGUF path).
    """
    gguf_path = Path(name_or_path) / gguf_file
    digest = file_sha256(gguf_path)
    target = cache_root() / "gguf" / f"{gguf_path.stem}-{digest[:16]}"
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path, gguf_file=gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(name_or_path, gguf_file=gguf_file, dtype=torch.float32)
    config = copy.deepcopy(quantised.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the copy holds plain float32 weights
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(quantised.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".tmp-"))
    try:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE").write_text(f"{gguf_path}\nsha256 {digest}\n")
        os.replace(tmp, target)  # atomic: a crash never leaves a half-written copy behind
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not (target / "config.json").is_file():
            raise
    return target


class _RowSampler(LogitsProcessor):
    """Sample each row with its own seeded generator (temperature + top-p), then force that token.

    Used with greedy decoding (the forced token is the argmax), so a row's draws depend only on its
    own seed and logits, never on which other rows share the batch.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > self.top_p  # keep the smallest set reaching top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        chosen = torch.stack(
            [torch.multinomial(probs[i].cpu(), 1, generator=g)[0] for i, g in enumerate(self.generators)]
        ).to(scores.device)
        forced = torch.full_like(scores, float("-inf"))
        forced[torch.arange(scores.shape[0], device=scores.device), chosen] = 0.0
        return forced


class TransformersGenerator:
    """Batched local generation; see the module docstring."""

    def __init__(self, config: GeneratorConfig):
        self.config = config
        ref = resolve_llm(config.model, config.gguf_file)
        self.model_name = ref.name
        self.gguf_sha256 = None
        load_id, load_gguf = config.model, config.gguf_file
        if ref.gguf_file and Path(ref.name_or_path, ref.gguf_file).is_file():
            folder = dequantised_gguf_folder(ref.name_or_path, ref.gguf_file)
            self.gguf_sha256 = folder.name.rsplit("-", 1)[-1]
            load_id, load_gguf = str(folder), None
        self.device = config.device or best_device()
        self.tokenizer, self.model = load_causal_lm(load_id, load_gguf, config.dtype, self.device)
        self._prefix: tuple[tuple[int, ...], Any] | None = None
        self._stop_id_cache: dict[str, set[int]] = {}

    # -- provenance ---------------------------------------------------------------------------------
    def cache_settings(self) -> dict[str, Any]:
        c = self.config
        return {
            "model": self.model_name,
            "gguf_sha256": self.gguf_sha256,
            "backend": "transformers",
            "dtype": str(self.model.dtype).replace("torch.", ""),
            "device_type": torch.device(self.device).type,
        } | ({"max_new_tokens": c.max_new_tokens} if c.max_new_tokens else {})

    def info(self) -> dict[str, Any]:
        return self.cache_settings() | {"batch_size": self.config.batch_size, "device": self.device}

    # -- generation ---------------------------------------------------------------------------------
    def _encode(self, prompts: list[str], chat: bool) -> list[list[int]]:
        if chat:
            prompts = [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
                )
                for p in prompts
            ]
        return [self.tokenizer(p, add_special_tokens=not chat)["input_ids"] for p in prompts]

    def _prefix_cache(self, prefix: list[int]):
        """KV cache of the shared prefix, computed once and reused while the prefix is unchanged."""
        key = tuple(prefix)
        if self._prefix is None or self._prefix[0] != key:
            with torch.inference_mode():
                out = self.model(torch.tensor([prefix], device=self.device), use_cache=True)
            self._prefix = (key, out.past_key_values)
        return self._prefix[1]

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
        """Generate one completion per prompt (same order as ``prompts``)."""
        if not prompts:
            return []
        c = self.config
        max_new, temperature, top_p, seeds = resolve_sampling(
            c, len(prompts), max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seeds=seeds
        )
        ids = self._encode(prompts, chat)
        # Shared prefix: common to every prompt, leaving at least one token of suffix per prompt.
        n_prefix = min(len(x) for x in ids) - 1
        for x in ids[1:]:
            n_prefix = next((i for i in range(n_prefix) if x[i] != ids[0][i]), n_prefix)
        prefix = ids[0][:n_prefix]
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        results: list[Generation | None] = [None] * len(ids)
        batches = [order[i : i + c.batch_size] for i in range(0, len(order), c.batch_size)]
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(ids), desc="generate", unit="item")
        for rows in batches:
            start = time.perf_counter()
            outs = self._generate_batch(
                [ids[i][n_prefix:] for i in rows],
                prefix,
                stop,
                max_new,
                temperature,
                top_p,
                [seeds[i] for i in rows],
            )
            per_item = (time.perf_counter() - start) / len(rows)
            for i, (text, n_out, reason) in zip(rows, outs, strict=True):
                results[i] = Generation(text, len(ids[i]), n_out, per_item, reason)
            if bar is not None:
                bar.update(len(rows))
        if bar is not None:
            bar.close()
        return results  # type: ignore[return-value]

    def _stop_tokens(self, stop: list[str]) -> tuple[set[int], list[str]]:
        """Single-character stops (a newline) become end-of-sequence token ids: every vocabulary entry that
        contains the character ends generation, which is exact and far cheaper than ``stop_strings``
        (that criterion re-scans the vocabulary on every call). Longer stops use ``stop_strings``."""
        ids: set[int] = set()
        for s in stop:
            if len(s) == 1:
                if s not in self._stop_id_cache:
                    vocab = self.tokenizer.batch_decode([[i] for i in range(len(self.tokenizer))])
                    self._stop_id_cache[s] = {i for i, t in enumerate(vocab) if s in t}
                ids |= self._stop_id_cache[s]
        return ids, [s for s in stop if len(s) > 1]

    def _generate_batch(self, suffixes, prefix, stop, max_new, temperature, top_p, seeds):
        tok = self.tokenizer
        pad = tok.pad_token_id
        width = max(len(s) for s in suffixes)
        input_ids = [prefix + [pad] * (width - len(s)) + s for s in suffixes]
        mask = [[1] * len(prefix) + [0] * (width - len(s)) + [1] * len(s) for s in suffixes]
        kwargs: dict[str, Any] = {}
        if prefix:
            cache = copy.deepcopy(self._prefix_cache(prefix))
            if len(suffixes) > 1:
                cache.batch_repeat_interleave(len(suffixes))
            kwargs["past_key_values"] = cache
        if temperature > 0:
            kwargs["logits_processor"] = LogitsProcessorList([_RowSampler(seeds, temperature, top_p)])
        stop_ids, stop_strings = self._stop_tokens(stop or [])
        if stop_strings:
            kwargs.update(stop_strings=stop_strings, tokenizer=tok)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=torch.tensor(input_ids, device=self.device),
                attention_mask=torch.tensor(mask, device=self.device),
                max_new_tokens=max_new,
                do_sample=False,
                num_beams=1,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=pad,
                eos_token_id=sorted(eos | stop_ids),
                **kwargs,
            )
        new = out[:, len(input_ids[0]) :].tolist()
        decoded = []
        for row in new:
            n = len(row)
            while n and row[n - 1] == pad:  # finished rows are padded to the batch's length
                n -= 1
            ended_eos = n < len(row) or (n > 0 and row[n - 1] in eos | stop_ids)
            content = [t for t in row[:n] if t not in eos]
            text = tok.decode(content, skip_special_tokens=True)
            hit = [text.find(s) for s in (stop or []) if s in text]
            if hit:
                text = text[: min(hit)]
            reason = "stop" if (hit or ended_eos) else "length"
            decoded.append((text, n, reason))
        return decoded
