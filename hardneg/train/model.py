"""The model side of training: base model + prompts, unused parameters frozen, the contrastive loss, and
fingerprints of weights and hardware (what a summary records)."""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

import torch

from hardneg.assets import resolve_embedder
from hardneg.errors import first_line
from hardneg.options import ConfigError
from hardneg.revisions import check_model_loaded
from hardneg.train.config import LOSS_CLASS_NAMES, LossName


def load_model(
    model_id: str,
    *,
    revision: str | None = None,
    max_seq_length: int = 256,
    prompts: dict[str, str] | None = None,
    seed: int = 42,
):
    """Load the base model (any Hub id, folder or ``embedded:minilm``) and set prompts + max length.

    A plain transformers checkpoint (``distilbert-base-uncased``) gets mean pooling, as
    sentence-transformers does. ``prompts`` (``{"query": ..., "document": ...}``) are stored in the saved
    model's ``config_sentence_transformers.json``, so ``encode_query``/``encode_document`` at
    evaluation use the same text as training.
    """
    from sentence_transformers import SentenceTransformer
    from transformers import set_seed

    ref = resolve_embedder(model_id)
    set_seed(seed)  # heads that a plain checkpoint lacks are initialised from the seed
    try:
        # A local folder must never become a Hub lookup (the model card guesses Hub ids from its path).
        local = Path(ref.name_or_path).is_dir()
        model = SentenceTransformer(ref.name_or_path, revision=revision, local_files_only=local)
    except Exception as err:  # OSError, HTTP errors, offline errors...
        message = first_line(err)
        raise RuntimeError(
            f"cannot load model '{model_id}': {message}; fix: check the model id / revision, your network "
            "(HF_HUB_OFFLINE) or use embedded:minilm"
        ) from None
    if not local:
        check_model_loaded(model, ref.name_or_path, revision)  # never a cached copy of another revision
    model.max_seq_length = max_seq_length
    model.prompts = {k: v for k, v in (prompts or {}).items() if v}
    model.default_prompt_name = None
    return model


def freeze_unused_parameters(model) -> list[str]:
    """Freeze parameters that never reach the embedding (e.g. BERT's pooler under mean pooling).

    One forward/backward pass on a probe text finds them (RNG state untouched). They would get no
    gradient anyway, so training is unchanged; but DDP with ``find_unused_parameters=False`` (the fast
    setting) fails on such parameters, and ``True`` costs a graph traversal every step.
    """
    with torch.random.fork_rng(devices=[]):
        features = {
            k: v.to(model.device) if isinstance(v, torch.Tensor) else v
            for k, v in model.preprocess(["probe"]).items()
        }
        model(features)["sentence_embedding"].float().sum().backward()
    unused = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    for name, param in model.named_parameters():
        param.grad = None
        if name in unused:
            param.requires_grad_(False)
    return unused


def build_loss(
    model,
    *,
    loss: LossName = "mnrl",
    scale: float = 20.0,
    mini_batch_size: int = 32,
    guide=None,
    gather_across_devices: bool = True,
):
    """The contrastive loss over (anchor, positive, negative): each anchor against its positive, its
    hard negative and every other row's positive and negative in the (gathered) batch."""
    from sentence_transformers.sentence_transformer import losses

    if loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(
            model, scale=scale, gather_across_devices=gather_across_devices
        )
    if loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(
            model, scale=scale, mini_batch_size=mini_batch_size, gather_across_devices=gather_across_devices
        )
    if loss == "gist":
        if guide is None:
            raise ConfigError("loss=gist needs a guide model; fix: set --guide_model")
        return losses.GISTEmbedLoss(model, guide=guide, gather_across_devices=gather_across_devices)
    raise ConfigError(f"unknown loss '{loss}'; fix: use one of {sorted(LOSS_CLASS_NAMES)}")


# ---------------------------------------------------------------------------------------------------------
# checkpoints, fingerprints, hardware


def weights_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over every parameter's name and values: equal fingerprints mean identical weights."""
    digest = hashlib.sha256()
    for name, param in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(param.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def describe_hardware(world_size: int) -> str:
    """Where training ran, e.g. '2 x NVIDIA H100 80GB HBM3 (cuda)' or '2 processes on CPU (x86_64, 16 cores)'."""
    if torch.cuda.is_available():
        return f"{world_size} x {torch.cuda.get_device_name(0)} (cuda, torch {torch.__version__})"
    cpu = platform.processor() or platform.machine()
    procs = f"{world_size} process{'es' if world_size > 1 else ''}"
    return f"{procs} on CPU ({cpu}, {os.cpu_count()} cores, torch {torch.__version__})"
