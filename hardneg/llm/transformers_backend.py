"""Local batched generation with transformers.

Speed comes from four things (a small decode loop of our own, not ``model.generate``):

1. Batching with left padding, prompts sorted by length so batches waste little padding; each batch
   is prefilled in groups of similar length whose KV entries are then laid side by side, so the
   prefill computes almost no padding (15-20% faster here than one padded prefill).
2. A shared-prefix KV cache: the longest token prefix common to all prompts of a call (the
   instructions + few-shot examples) is run through the model once; each batch starts from a copy
   of that cache, so only the passage-specific suffix is prefilled. Padding goes between the prefix
   and the suffix; the attention mask hides it and position ids follow the mask, so every row sees
   exactly the positions it would see alone.
3. Early stop on the template's stop strings (a query is one line).
4. A shrinking batch: a row that ends leaves the batch and its KV cache at once, so later decode
   steps run only the rows still generating (``generate`` keeps finished rows until the last ends).

On CPUs with native bf16 (avx512_bf16 / AMX), ``dtype=bfloat16`` roughly doubles prefill speed; its
greedy outputs differ from float32's in some rows (see benchmarks/README.md).

Greedy outputs therefore do not depend on the batch size. Sampling uses one ``torch.Generator`` per
row seeded with the item's seed (``_RowSampler``), so sampled outputs do not depend on batching either.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from hardneg.assets import best_device, load_causal_lm, resolve_llm
from hardneg.llm import Generation, Generator, GeneratorConfig, Sampling, common_prefix, rate_bar, show_tokens
from hardneg.llm.bounding import DEFAULT_CONTEXT_TOKENS


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


def load_local_causal_lm(model: str, gguf_file: str | None, dtype: str, device: str):
    """(tokenizer, model, GGUF sha256 or None) through ``load_causal_lm``; a local GGUF loads from its
    dequantised copy (``dequantised_gguf_folder``), so generation and LM scoring share one loaded model."""
    ref = resolve_llm(model, gguf_file)
    gguf_sha256 = None
    if ref.gguf_file and Path(ref.name_or_path, ref.gguf_file).is_file():
        folder = dequantised_gguf_folder(ref.name_or_path, ref.gguf_file)
        gguf_sha256 = folder.name.rsplit("-", 1)[-1]
        model, gguf_file = str(folder), None
    return (*load_causal_lm(model, gguf_file, dtype, device), gguf_sha256)


# A prefill group takes rows whose suffix is at least (1 - tolerance) x the group's longest: at most ~10%
# padding is computed, and groups stay large enough for efficient matmuls.
PREFILL_PAD_TOLERANCE = 0.1


def _length_groups(lengths: list[int], tolerance: float) -> list[list[int]]:
    """Row indices grouped by similar length (longest group first): each group's rows are >= (1 - tolerance) x
    its longest row. Rows keep their input order inside a group (one group = the batch as given)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] >= (1 - tolerance) * lengths[groups[-1][0]]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return [sorted(g) for g in groups]


class _RowSampler:
    """Sample each row with its own seeded generator (temperature + top-p).

    A row's draws depend only on its own seed and logits, never on which other rows share the batch.
    """

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def __call__(self, scores: torch.Tensor, rows: list[int]) -> torch.Tensor:
        """One token per row of ``scores``; ``rows[i]`` is the batch row (its generator) of ``scores[i]``."""
        probs = torch.softmax(scores.float() / self.temperature, dim=-1)
        if self.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            drop = sorted_p.cumsum(-1) - sorted_p > self.top_p  # keep the smallest set reaching top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        return torch.stack(
            [
                torch.multinomial(probs[i].cpu(), 1, generator=self.generators[r])[0]
                for i, r in enumerate(rows)
            ]
        )


class TransformersGenerator(Generator):
    """Batched local generation; see the module docstring."""

    def __init__(self, config: GeneratorConfig):
        self.config = config
        self.model_name = resolve_llm(config.model, config.gguf_file).name
        self.device = config.device or best_device()
        self.tokenizer, self.model, self.gguf_sha256 = load_local_causal_lm(
            config.model, config.gguf_file, config.dtype, self.device
        )
        self._prefix: tuple[tuple[int, ...], Any] | None = None
        # transformers >= 5.2x names the KV-cache argument `cache` (`past_key_values` is deprecated).
        forward_args = inspect.signature(self.model.forward).parameters
        self._cache_arg = "cache" if "cache" in forward_args else "past_key_values"
        self._stop_id_cache: dict[str, set[int]] = {}

    # -- provenance ---------------------------------------------------------------------------------
    def cache_settings(self) -> dict[str, Any]:
        c = self.config
        return (
            {
                "model": self.model_name,
                "gguf_sha256": self.gguf_sha256,
                "backend": "transformers",
                "dtype": str(self.model.dtype).replace("torch.", ""),
                "device_type": torch.device(self.device).type,
            }
            | ({"max_new_tokens": c.max_new_tokens} if c.max_new_tokens else {})
            | self.thinking_settings()
        )

    def info(self) -> dict[str, Any]:
        return self.cache_settings() | {"batch_size": self.config.batch_size, "device": self.device}

    # -- prompt bounding ----------------------------------------------------------------------------
    def max_model_len(self) -> int:
        n = getattr(self.model.config, "max_position_embeddings", None)
        if not n:
            n = getattr(self.tokenizer, "model_max_length", None)
            n = n if n and n < 10**7 else DEFAULT_CONTEXT_TOKENS  # "no limit" is stored as a huge int
        return int(n)

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def detokenize(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    # -- generation ---------------------------------------------------------------------------------
    def _encode(self, prompts: list[str], chat: bool) -> list[list[int]]:
        if chat:
            prompts = [
                self.tokenizer.apply_chat_template(
                    [{"role": "user", "content": p}],
                    tokenize=False,
                    add_generation_prompt=True,
                    **self.chat_template_kwargs(),
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
            cache = getattr(out, "cache", None)
            self._prefix = (key, cache if cache is not None else out.past_key_values)
        return self._prefix[1]

    def _generate(
        self, prompts: list[str], *, chat: bool, stop: list[str], sampling: Sampling, progress: bool
    ) -> list[Generation]:
        c = self.config
        max_new, temperature, top_p, seeds = sampling
        ids = self._encode(prompts, chat)
        prefix = common_prefix(ids)
        n_prefix = len(prefix)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        results: list[Generation | None] = [None] * len(ids)
        batches = [order[i : i + c.batch_size] for i in range(0, len(order), c.batch_size)]
        bar = None
        if progress:
            bar = rate_bar(len(ids), "generate")
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
                show_tokens(bar, sum(results[i].completion_tokens for i in order if results[i] is not None))
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

    def _prefill(self, suffixes: list[list[int]], prefix: list[int], tolerance: float | None = None):
        """Run the suffixes on copies of the prefix cache; returns (batched cache, attention mask, last logits,
        last position) with rows left-padded to the longest suffix (padding between prefix and suffix).

        Rows are prefilled in groups of similar length (``PREFILL_PAD_TOLERANCE``) and their KV entries then
        laid side by side, so the prefill computes almost no padding even when a batch mixes short and long
        passages; the decode steps still run the whole batch together."""
        device, pad, n_prefix = self.device, self.tokenizer.pad_token_id, len(prefix)
        lengths = [len(s) for s in suffixes]
        width = max(lengths)
        mask = torch.tensor([[1] * n_prefix + [0] * (width - n) + [1] * n for n in lengths], device=device)
        groups = _length_groups(lengths, PREFILL_PAD_TOLERANCE if tolerance is None else tolerance)
        merged, logits = None, [None] * len(suffixes)
        for rows in groups:
            w = max(lengths[r] for r in rows)
            if prefix:
                cache = copy.deepcopy(self._prefix_cache(prefix))
                if len(rows) > 1:
                    cache.batch_repeat_interleave(len(rows))
            else:
                from transformers import DynamicCache

                cache = DynamicCache(config=self.model.config)
            group_mask = torch.cat([mask[rows][:, :n_prefix], mask[rows][:, n_prefix + width - w :]], dim=1)
            out = self.model(
                input_ids=torch.tensor([[pad] * (w - lengths[r]) + suffixes[r] for r in rows], device=device),
                attention_mask=group_mask,
                position_ids=(group_mask.cumsum(-1) - 1).clamp(min=0)[:, n_prefix:],
                use_cache=True,
                logits_to_keep=1,
                **{self._cache_arg: cache},
            )
            for r, row_logits in zip(rows, out.logits[:, -1], strict=True):
                logits[r] = row_logits
            if len(groups) == 1:
                merged = cache
                break
            layers = getattr(cache, "layers", None)
            if merged is None:
                if not layers or any(type(layer).__name__ != "DynamicLayer" for layer in layers):
                    # Other cache types (sliding windows, ...): one padded prefill of the whole batch.
                    return self._prefill(suffixes, prefix, tolerance=float("inf"))
                merged, full = cache, []
                for layer in layers:  # batch-wide buffers; the shared prefix is the same for every row
                    pair = []
                    for t in (layer.keys, layer.values):
                        buf = t.new_zeros((len(suffixes), t.shape[1], n_prefix + width, t.shape[-1]))
                        buf[:, :, :n_prefix] = t[:1, :, :n_prefix]
                        pair.append(buf)
                    full.append(pair)
            index = torch.tensor(rows, device=device)
            for (keys, values), layer in zip(full, layers, strict=True):
                keys[index, :, n_prefix + width - w :] = layer.keys[:, :, n_prefix:]
                values[index, :, n_prefix + width - w :] = layer.values[:, :, n_prefix:]
        if len(groups) > 1:
            for (keys, values), layer in zip(full, merged.layers, strict=True):
                layer.keys, layer.values = keys, values
        position = torch.tensor([n_prefix + n - 1 for n in lengths], device=device)
        return merged, mask, torch.stack(logits), position

    def _generate_batch(self, suffixes, prefix, stop, max_new, temperature, top_p, seeds):
        """Prefill the batch's suffixes on a copy of the prefix cache, then decode step by step; a row that
        ends (end-of-sequence, stop token or stop string) leaves the batch at once, so later steps only run
        the rows still generating (``model.generate`` keeps finished rows until the longest one ends)."""
        tok, device = self.tokenizer, self.device
        with torch.inference_mode():
            cache, mask, logits, position = self._prefill(suffixes, prefix)
        sampler = _RowSampler(seeds, temperature, top_p) if temperature > 0 else None
        stop_ids, stop_strings = self._stop_tokens(stop)
        eos = self.model.generation_config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos]) | {tok.eos_token_id}
        ends = torch.tensor(sorted(eos | stop_ids), device=device)
        new: list[list[int]] = [[] for _ in suffixes]
        ended = [False] * len(suffixes)
        live = list(range(len(suffixes)))  # batch rows still generating, in cache order
        with torch.inference_mode():
            for step in range(max_new):
                scores = logits.float()
                chosen = sampler(scores, live) if sampler else scores.argmax(-1)
                done = torch.isin(chosen.to(device), ends).tolist()
                for r, t, d in zip(live, chosen.tolist(), done, strict=True):
                    new[r].append(t)
                    ended[r] = d or (
                        bool(stop_strings)
                        and any(x in tok.decode(new[r], skip_special_tokens=True) for x in stop_strings)
                    )
                keep = [i for i, r in enumerate(live) if not ended[r]]
                if not keep or step == max_new - 1:
                    break
                if len(keep) < len(live):  # drop finished rows from the batch and its cache
                    index = torch.tensor(keep, device=device)
                    cache.batch_select_indices(index)
                    mask, position, chosen = mask[index], position[index], chosen.to(device)[index]
                    live = [live[i] for i in keep]
                mask = torch.cat([mask, mask.new_ones((len(live), 1))], dim=1)
                position = position + 1
                logits = self.model(
                    input_ids=chosen.to(device).view(-1, 1),
                    attention_mask=mask,
                    position_ids=position.view(-1, 1),
                    use_cache=True,
                    **{self._cache_arg: cache},
                ).logits[:, -1]
        decoded = []
        for row, hit_end in zip(new, ended, strict=True):
            content = [t for t in row if t not in eos]
            text = tok.decode(content, skip_special_tokens=True)
            hit = [text.find(s) for s in stop if s in text]
            if hit:
                text = text[: min(hit)]
            reason = "stop" if (hit or hit_end) else "length"
            decoded.append((text, len(row), reason))
        return decoded
