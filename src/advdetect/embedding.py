"""2-D embeddings of representations for the overlap plots: t-SNE (scikit-learn) and UMAP (umap-learn), seeded.

The embeddings are for looking only; every overlap *number* of the book is computed in the original
representation space (:func:`advdetect.arclu.overlap`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.manifold import TSNE

METHODS = ("t-SNE", "UMAP")


def embed(z: torch.Tensor | np.ndarray, method: str, *, seed: int = 0, perplexity: float = 30.0,
          neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """Embed the rows of ``z`` in 2-D: ``"t-SNE"`` (Barnes-Hut, PCA initialisation, ``perplexity``) or
    ``"UMAP"`` (``neighbors``, ``min_dist``), both with the random seed ``seed``. Returns ``(N, 2)``."""
    data = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    data = data.astype(np.float32)
    if method == "t-SNE":
        return TSNE(n_components=2, perplexity=min(perplexity, (len(data) - 1) / 3), init="pca",
                    random_state=seed).fit_transform(data)
    if method == "UMAP":
        import umap  # lazy: importing umap-learn compiles numba code (seconds)

        with warnings.catch_warnings():  # a seeded UMAP runs single-threaded and says so on every call
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            return umap.UMAP(n_components=2, n_neighbors=min(neighbors, len(data) - 1), min_dist=min_dist,
                             random_state=seed, n_jobs=1).fit_transform(data)
    raise ValueError(f"unknown embedding {method!r}: choose one of {', '.join(METHODS)}")
