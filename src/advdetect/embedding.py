"""2-D embeddings of representations for the overlap plots: t-SNE (scikit-learn) and UMAP (umap-learn), seeded.

The embeddings are for looking only; every overlap *number* of the book is computed in the original
representation space (:func:`advdetect.arclu.overlap`).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

METHODS = ("t-SNE", "UMAP")


def embed(z: torch.Tensor | np.ndarray, method: str, *, seed: int = 0, perplexity: float = 30.0,
          neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """Embed the rows of ``z`` in 2-D: ``"t-SNE"`` (Barnes-Hut, PCA initialisation, ``perplexity``) or
    ``"UMAP"`` (``neighbors``, ``min_dist``), both with the random seed ``seed``. Returns ``(N, 2)``."""
    data = z.detach().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z)
    data = data.astype(np.float32)
    if method == "t-SNE":
        from sklearn.manifold import TSNE

        return TSNE(n_components=2, perplexity=min(perplexity, (len(data) - 1) / 3), init="pca",
                    random_state=seed).fit_transform(data)
    if method == "UMAP":
        import umap

        with warnings.catch_warnings():  # a seeded UMAP runs single-threaded and says so on every call
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            return umap.UMAP(n_components=2, n_neighbors=min(neighbors, len(data) - 1), min_dist=min_dist,
                             random_state=seed, n_jobs=1).fit_transform(data)
    raise ValueError(f"unknown embedding {method!r}: choose one of {', '.join(METHODS)}")


def cached_embed(cache, name: str, z: torch.Tensor, method: str, *, seed: int = 0, perplexity: float = 30.0,
                 neighbors: int = 15) -> np.ndarray:
    """:func:`embed` through the artefact cache (keyed by ``name``, the method, its settings and the data)."""
    config = {"space": name, "method": method, "n": len(z), "sum": float(z.sum()), "seed": seed,
              "perplexity": perplexity, "neighbors": neighbors}
    out = cache.memo("embedding", config, lambda: {"points": torch.as_tensor(embed(
        z, method, seed=seed, perplexity=perplexity, neighbors=neighbors))})
    return out["points"].numpy()


def overlap_figure(cache, studies: dict, *, seed: int = 0, perplexity: float = 30.0, neighbors: int = 15,
                   num_classes: int = 10):
    """One column per representation space of :func:`advdetect.arclu.representation_study` results, one row per
    embedding method: benign and adversarial points coloured by predicted class, each panel titled with the
    space's overlap numbers (computed in the space, not in the picture)."""
    import matplotlib.pyplot as plt

    from .plotting import representation_legend, representation_map

    fig, axes = plt.subplots(len(METHODS), len(studies), figsize=(4.2 * len(studies), 4.0 * len(METHODS)),
                             squeeze=False)
    for j, (name, st) in enumerate(studies.items()):
        z = torch.cat([st["z_benign"], st["z_adv"]])
        pred = torch.cat([st["pred_benign"], st["pred_adv"]])
        is_adv = np.r_[np.zeros(len(st["z_benign"])), np.ones(len(st["z_adv"]))]
        for i, method in enumerate(METHODS):
            pts = cached_embed(cache, name, z, method, seed=seed, perplexity=perplexity, neighbors=neighbors)
            representation_map(axes[i, j], pts, pred, is_adv,
                               f"{name} - {method}\ncentre AUC {st['centre AUC']:.2f}, kNN acc. "
                               f"{st['kNN accuracy']:.2f}, attack success {st['success']:.2f}", num_classes)
    representation_legend(fig, num_classes)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
