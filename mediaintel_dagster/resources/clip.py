"""Image embeddings of keyframes: OpenCLIP when its weights are on this machine, a declared
handcrafted fallback when they are not.

Where the weights come from (checked before anything is loaded, in well under a second):

1. ``pretrained`` is a path to a local checkpoint file (``.bin``/``.pt``/``.safetensors``,
   an open_clip state_dict): loaded from there. ``model_id`` is
   ``open_clip/<model_name>@sha256:<first 12 hex of the file's SHA-256>``.
2. ``pretrained`` is an open_clip tag (default ``laion2b_s34b_b79k``): the Hugging Face
   cache (``HF_HOME`` / ``HF_HUB_CACHE``) is searched for the tag's file. ``model_id`` is
   ``open_clip/<model_name>@<tag>``.
3. Neither: with ``HF_HUB_OFFLINE`` unset or 1 (the default here), no download is tried;
   a warning says how to install the weights, and the ``fallback`` embedder runs instead
   (``mediaintel/image-features-v1``, see ``ImageFeatureEmbedder``). Only
   ``HF_HUB_OFFLINE=0``, set by the user, lets open_clip download them.

Vectors of two models never mix: the ``embeddings`` table keys rows by model_id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from .. import config
from ..media.image_features import FALLBACK_MODEL_ID, ImageFeatureEmbedder  # noqa: F401 - re-exported
from .models import ModelUnavailable, load_once, offline, resolve_device

log = logging.getLogger(__name__)


def install_hint(model_name: str, pretrained: str, repo: str = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K") -> str:
    """How a user puts the weights where ClipResource finds them (the log and the docs say it)."""
    cache_dir = "models--" + repo.replace("/", "--")
    return (
        f"To use OpenCLIP {model_name} ({pretrained}), either (1) download the checkpoint on a "
        f"machine with internet access, e.g. `huggingface-cli download "
        f"{repo} open_clip_model.safetensors` (or "
        f"open_clip_pytorch_model.bin), copy the file here and set the clip resource's "
        f"`pretrained` to its path (env MEDIAINTEL_CLIP_PRETRAINED=/path/to/file); or (2) copy "
        f"a populated Hugging Face cache (~/.cache/huggingface/hub/{cache_dir}) to this machine (HF_HOME/HF_HUB_CACHE point at it); or (3) allow "
        f"a download at run time with HF_HUB_OFFLINE=0."
    )


# ----------------------------------------------------------------------------------------
# OpenCLIP
# ----------------------------------------------------------------------------------------


class ClipEmbedder:
    """An open_clip image tower in eval mode on one device; one ``embed`` = one forward pass."""

    is_fallback = False
    reason = ""

    embeds_text = True

    def __init__(self, model, preprocess, model_id: str, device: str, tokenizer=None):
        self.model, self.preprocess, self.model_id, self.device = model, preprocess, model_id, device
        self.tokenizer = tokenizer
        self.dim = int(getattr(model, "embed_dim", 0) or model.visual.output_dim)
        self.forward_calls = 0
        self.batch_sizes: list[int] = []

    def embed(self, images: list) -> np.ndarray:
        import torch

        self.forward_calls += 1
        self.batch_sizes.append(len(images))
        if not images:
            return np.zeros((0, self.dim), np.float32)
        batch = torch.stack([self.preprocess(im.convert("RGB")) for im in images]).to(self.device)
        with torch.inference_mode():
            if self.device.startswith("cuda"):
                with torch.autocast("cuda", dtype=torch.float16):
                    feats = self.model.encode_image(batch)
            else:
                feats = self.model.encode_image(batch)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """Text tower: query vectors in the same space as the keyframe vectors (text -> scene search)."""
        import torch

        tokens = self.tokenizer(texts).to(self.device)
        with torch.inference_mode():
            feats = torch.nn.functional.normalize(self.model.encode_text(tokens).float(), dim=-1)
        return feats.cpu().numpy().astype(np.float32)


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# Hub repos of the default model's tags, so that "weights absent" is known without
# importing open_clip (and torch: seconds on a busy CPU); tests check them against open_clip.
KNOWN_HF_REPOS = {
    ("ViT-B-32", "laion2b_s34b_b79k"): "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
}


def _hf_cached_in(repo: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id=repo, filename=name)
        if isinstance(found, str) and os.path.isfile(found):
            return found
    return None


def _hf_cached_file(pretrained_cfg: dict) -> str | None:
    """The tag's checkpoint in the local Hugging Face cache, without touching the network."""
    repo = (pretrained_cfg.get("hf_hub") or "").strip("/")
    if repo:
        found = _hf_cached_in(repo)
        if found:
            return found
    url = pretrained_cfg.get("url") or ""
    if url:  # open_clip's own download folder for URL-only (OpenAI) weights
        candidate = Path("~/.cache/clip").expanduser() / os.path.basename(url)
        if candidate.is_file():
            return str(candidate)
    return None


class ClipResource(ConfigurableResource):
    """OpenCLIP image embeddings of keyframes (default ViT-B-32, laion2b_s34b_b79k).

    Weights load from a local file (``pretrained`` = path) or the Hugging Face cache,
    never from the network unless HF_HUB_OFFLINE=0; when absent, the declared fallback
    embedder runs and a warning says how to install them. Loaded once per process.
    """

    model_name: str = Field(default="ViT-B-32", description="open_clip architecture name.")
    pretrained: str = Field(
        default_factory=lambda: config.get("MEDIAINTEL_CLIP_PRETRAINED"),
        description="open_clip pretrained tag (looked up in the HF cache) or a local checkpoint file path.",
    )
    model_config_file: str | None = Field(
        default=None, description="JSON open_clip model config for an architecture open_clip does not ship.")
    device: str = Field(default="auto", description="'auto' (cuda when available), 'cuda', 'cpu'.")
    batch_size: int = Field(default=32, description="Keyframes per forward pass (across all media of a run).")
    fallback: str = Field(
        default="image-features",
        description="'image-features': run mediaintel/image-features-v1 when CLIP weights are absent; "
                    "'none': fail the step instead.")

    # ---- where the weights are --------------------------------------------------
    def _key(self) -> tuple:
        p = self.pretrained
        ident: tuple = (p,)
        if os.path.isfile(p):
            st = os.stat(p)
            ident = (os.path.abspath(p), st.st_size, st.st_mtime_ns)
        cfg = self.model_config_file
        if cfg and os.path.isfile(cfg):
            st = os.stat(cfg)
            cfg = (os.path.abspath(cfg), st.st_size, st.st_mtime_ns)
        return ("open_clip", self.model_name, ident, cfg, self.device, self.fallback,
                offline())

    def _model_config(self) -> dict | None:
        if not self.model_config_file:
            return None
        try:
            return json.loads(Path(self.model_config_file).read_text())
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"model_config_file {self.model_config_file!r} is not readable JSON: {exc}") from exc

    def resolve(self) -> dict:
        """Where the weights come from, without loading them: {'checkpoint', 'model_id',
        'preprocess'} or raises ModelUnavailable with a message that says how to install them."""
        p = self.pretrained
        looks_like_path = os.sep in p or p.endswith((".bin", ".pt", ".pth", ".safetensors")) or os.path.exists(p)
        if looks_like_path:
            if not os.path.isfile(p):
                raise ModelUnavailable(f"CLIP checkpoint file {p!r} does not exist. "
                                       + install_hint(self.model_name, "a local checkpoint"))
            return {"checkpoint": p, "model_id": f"open_clip/{self.model_name}@sha256:{file_sha256(p)[:12]}",
                    "preprocess": {}}
        known = KNOWN_HF_REPOS.get((self.model_name, p))
        if known and offline() and not _hf_cached_in(known):
            raise ModelUnavailable(self._absent(p, known))
        import open_clip

        cfg = open_clip.get_pretrained_cfg(self.model_name, p)
        if not cfg:
            raise ModelUnavailable(
                f"{p!r} is neither a file nor an open_clip pretrained tag of {self.model_name} "
                f"(tags: {open_clip.list_pretrained_tags_by_model(self.model_name)})")
        preprocess = {k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if cfg.get(k)}
        cached = _hf_cached_file(cfg)
        if cached:
            return {"checkpoint": cached, "model_id": f"open_clip/{self.model_name}@{p}", "preprocess": preprocess}
        if not offline():
            return {"checkpoint": None, "model_id": f"open_clip/{self.model_name}@{p}", "preprocess": preprocess}
        raise ModelUnavailable(self._absent(p, (cfg.get("hf_hub") or "").strip("/") or "<the tag's hub repo>"))

    def _absent(self, tag: str, repo: str) -> str:
        return (f"OpenCLIP weights {self.model_name}/{tag} are not on this machine (not in the Hugging Face "
                f"cache, and HF_HUB_OFFLINE is not 0, so nothing is downloaded). "
                + install_hint(self.model_name, tag, repo))

    # ---- loading ------------------------------------------------------------------
    def _build(self):
        try:
            where = self.resolve()
        except ModelUnavailable as exc:
            if self.fallback == "none":
                raise
            log.warning("%s Using the fallback embedder %s instead.", exc, FALLBACK_MODEL_ID)
            return ImageFeatureEmbedder(reason=str(exc))
        import open_clip

        device = resolve_device(self.device)
        arch = self.model_name
        cfg = self._model_config()
        if cfg is not None:
            # open_clip names an architecture by its config file's stem: register a copy
            # under model_name so that any file name works. The folder stays: open_clip
            # rescans every registered folder whenever another config is added.
            folder = Path(tempfile.mkdtemp(prefix="mediaintel-openclip-"))
            (folder / f"{arch}.json").write_text(json.dumps(cfg))
            open_clip.add_model_config(folder)
        t0 = time.perf_counter()
        pp = where["preprocess"]
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=where["checkpoint"] or self.pretrained, device=device,
            image_mean=pp.get("mean"), image_std=pp.get("std"), image_interpolation=pp.get("interpolation"),
            image_resize_mode=pp.get("resize_mode"),
        )
        model.eval()
        log.info("loaded %s on %s in %.1fs", where["model_id"], device, time.perf_counter() - t0)
        return ClipEmbedder(model, preprocess, where["model_id"], device, tokenizer=open_clip.get_tokenizer(arch))

    def embedder(self):
        """The loaded embedder (CLIP, or the fallback when the weights are absent), once per process."""
        return load_once(self._key(), self._build)

    def _looks_like_path(self) -> bool:
        p = self.pretrained
        return os.sep in p or p.endswith((".bin", ".pt", ".pth", ".safetensors")) or os.path.exists(p)

    @property
    def model_id(self) -> str:
        """The configured (logical) model: the OpenCLIP weights this resource asks for,
        named the same on every machine whether or not they are installed there. Code
        versions and the done-check use it; the model that actually ran (the fallback's own
        id when the weights are absent) is ``route()``'s answer and goes on the rows.
        Found without loading anything (build_defs reads it at every code-location load)."""
        def find() -> str:
            p = self.pretrained
            if self._looks_like_path():
                # A local checkpoint is named by its content, so a copied or renamed file
                # keeps its id; a machine without the file can only name it by its name.
                if os.path.isfile(p):
                    return f"open_clip/{self.model_name}@sha256:{file_sha256(p)[:12]}"
                return f"open_clip/{self.model_name}@{os.path.basename(p)}"
            return f"open_clip/{self.model_name}@{p}"

        return load_once(("model_id",) + self._key(), find)

    def route(self) -> tuple[str, str | None]:
        """(the model that runs on this machine, why it is not ``model_id``; None when it is).

        The routing decision the audit trail records: the declared fallback
        ``mediaintel/image-features-v1`` runs when the weights are absent (and ``fallback`` is
        not 'none'). A cache lookup, no model load; the embedder makes the same choice."""
        def decide() -> tuple[str, str | None]:
            try:
                return self.resolve()["model_id"], None
            except ModelUnavailable:
                if self.fallback == "none":
                    return self.model_id, None  # the step will fail when it loads, and say why
                return FALLBACK_MODEL_ID, (f"fallback: OpenCLIP weights {self.model_name}/"
                                           f"{os.path.basename(self.pretrained)} are not on this machine")

        return load_once(("route",) + self._key(), decide)

    def runtime(self) -> dict:
        served, _ = self.route()
        device = "cpu" if served == FALLBACK_MODEL_ID else resolve_device(self.device)
        return {"device": device, "compute_type": "float16-autocast" if device.startswith("cuda") else "float32",
                "batch_size": int(self.batch_size)}
