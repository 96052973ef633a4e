"""One plotting style for the whole book, and the figure helpers the chapters share."""

from __future__ import annotations

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D

#: colours of the ten classes (tab10) and of the roles that recur across chapters
CLASS_COLORS = [mpl.colormaps["tab10"](i) for i in range(10)]
ROLE_COLORS = {"true": "#222222", "gat": "#1f77b4", "discriminative": "#d62728", "positive": "#1f77b4",
               "negative": "#d62728", "adversarial": "#ff7f0e", "benign": "#2ca02c", "paper": "#7f7f7f"}

STYLE = {
    "figure.dpi": 110,
    "savefig.dpi": 110,
    "figure.figsize": (7.0, 3.6),
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.25,
    "legend.frameon": False,
    "legend.fontsize": 9,
    "image.cmap": "viridis",
    "lines.linewidth": 1.6,
}


def use_style() -> None:
    """Apply the book's matplotlib style (call once per notebook)."""
    mpl.rcParams.update(STYLE)


def density_1d(ax, grid: np.ndarray, true: np.ndarray, estimate: np.ndarray, positives: np.ndarray,
               negatives: np.ndarray, title: str, color: str) -> None:
    """GAT Fig 19 panel: estimated vs true density with the training points as a rug."""
    g = grid.ravel()
    ax.plot(g, true, color=ROLE_COLORS["true"], lw=1.0, label="true density")
    ax.plot(g, estimate, color=color, label="estimated (Gibbs)")
    top = max(true.max(), estimate.max())
    ax.plot(positives.ravel(), np.full(len(positives), -0.04 * top), "|", color=ROLE_COLORS["positive"], ms=6,
            alpha=0.5, label="positives")
    ax.plot(negatives.ravel(), np.full(len(negatives), -0.09 * top), "|", color=ROLE_COLORS["negative"], ms=6,
            alpha=0.5, label="negatives")
    ax.set_xlim(g.min(), g.max())
    ax.set_title(title)
    ax.set_xlabel("x")
    ax.set_ylabel("density")


def image_map(ax, values: np.ndarray, bounds: tuple[float, float], title: str, cmap: str = "viridis",
              vmin=None, vmax=None):
    """A square map of values on a regular grid (row-major, y upward) over ``bounds``^2."""
    n = int(round(np.sqrt(values.size)))
    im = ax.imshow(values.reshape(n, n), origin="lower", extent=(*bounds, *bounds), cmap=cmap, vmin=vmin,
                   vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return im


def scatter_2d(ax, positives: np.ndarray, negatives: np.ndarray, bounds: tuple[float, float], title: str) -> None:
    """GAT Fig 20 top row: class 1 (blue) and class 0 (red) points."""
    ax.scatter(negatives[:, 0], negatives[:, 1], s=2, color=ROLE_COLORS["negative"], alpha=0.5, lw=0)
    ax.scatter(positives[:, 0], positives[:, 1], s=2, color=ROLE_COLORS["positive"], alpha=0.7, lw=0)
    ax.set_xlim(*bounds)
    ax.set_ylim(*bounds)
    ax.set_aspect("equal")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)


def representation_map(ax, points: np.ndarray, pred, is_adv, title: str, num_classes: int = 10) -> None:
    """A 2-D embedding of benign (dots) and adversarial (stars) representations, coloured by predicted class
    (ARCLU Fig 2's convention)."""
    pred, is_adv = np.asarray(pred), np.asarray(is_adv, dtype=bool)
    cmap = plt.get_cmap("tab10")
    for adv, marker, size, alpha, edge in ((False, "o", 4, 0.45, 0.0), (True, "*", 24, 0.85, 0.2)):
        sel = is_adv == adv
        ax.scatter(points[sel, 0], points[sel, 1], c=[cmap(int(c) % 10) for c in pred[sel]], marker=marker, s=size,
                   alpha=alpha, edgecolors="black", linewidths=edge)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])


def representation_legend(fig, num_classes: int = 10) -> None:
    """One legend for a figure of :func:`representation_map` panels: class colours and the two markers."""
    cmap = plt.get_cmap("tab10")
    handles = [Line2D([], [], marker="o", ls="", color=cmap(c), label=str(c)) for c in range(num_classes)]
    handles += [Line2D([], [], marker="o", ls="", markerfacecolor="white", markeredgecolor="black", label="benign"),
                Line2D([], [], marker="*", ls="", markerfacecolor="white", markeredgecolor="black", ms=11,
                       label="adversarial")]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False,
               title="predicted class", title_fontsize=8)


def mosaic(images, pad: int = 1, fill: float = 1.0) -> np.ndarray:
    """Images ``(R, C, channels, H, W)`` in [0, 1] as one ``(R*H + gaps, C*W + gaps[, 3])`` array with ``pad``
    pixels of ``fill`` between them (grey images lose their channel axis)."""
    a = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images, dtype=float)
    if a.ndim != 5:
        raise ValueError(f"need images of shape (rows, cols, channels, H, W), got {a.shape}")
    r, c, ch, h, w = a.shape
    out = np.full((r * (h + pad) - pad, c * (w + pad) - pad, ch), fill)
    for i in range(r):
        for j in range(c):
            out[i * (h + pad):i * (h + pad) + h, j * (w + pad):j * (w + pad) + w] = a[i, j].transpose(1, 2, 0)
    return out[..., 0] if ch == 1 else out


def image_grid(ax, images, *, row_labels=None, col_labels=None, title: str = "", row_title: str = "",
               col_title: str = "") -> None:
    """Draw ``images`` (R, C, channels, H, W) as one mosaic on ``ax``, with a label per row and column."""
    a = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    r, c, _, h, w = a.shape
    ax.imshow(mosaic(a), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.grid(False)
    ax.set_xticks([j * (w + 1) + w / 2 for j in range(c)], list(col_labels) if col_labels is not None else [""] * c,
                  fontsize=8)
    ax.set_yticks([i * (h + 1) + h / 2 for i in range(r)], list(row_labels) if row_labels is not None else [""] * r,
                  fontsize=8)
    ax.tick_params(length=0)
    if col_labels is not None and max((len(str(v)) for v in col_labels), default=0) > 3:
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right" if not col_title else "left")
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set(title=title, xlabel=col_title, ylabel=row_title)
    if col_title:
        ax.xaxis.set_label_position("top")
        ax.xaxis.tick_top()


def image_table(fig, images, captions, *, row_labels=None, col_labels=None, title: str = ""):
    """One small axis per image of ``images`` (R, C, channels, H, W) with ``captions[i][j]`` under it (e.g.
    the logit an attack reached); returns the axes (R, C)."""
    a = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images)
    r, c = a.shape[:2]
    axes = np.asarray(fig.subplots(r, c, squeeze=False))
    for i in range(r):
        for j in range(c):
            ax = axes[i, j]
            img = a[i, j].transpose(1, 2, 0)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            ax.set_xlabel(captions[i][j], fontsize=7, labelpad=1)
            if j == 0 and row_labels is not None:
                ax.set_ylabel(row_labels[i], fontsize=8)
            if i == 0 and col_labels is not None:
                ax.set_title(col_labels[j], fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return axes


def overlap_figure(studies: dict, points: dict, *, num_classes: int = 10, methods=("t-SNE", "UMAP")):
    """One column per representation space of :func:`advdetect.arclu.representation_study` results, one row per
    embedding method (``points[(space, method)]``: the 2-D embedding of the space's benign points, then of its
    *successful* adversarial ones, the points the overlap numbers are measured on): points coloured by predicted
    class, each panel titled with the space's overlap numbers (computed in the space, not in the picture)."""
    fig, axes = plt.subplots(len(methods), len(studies), figsize=(4.4 * len(studies), 4.3 * len(methods)),
                             squeeze=False)
    for j, (name, st) in enumerate(studies.items()):
        hit = np.asarray(st["successful"], dtype=bool)
        pred = np.r_[np.asarray(st["pred_benign"]), np.asarray(st["pred_adv"])[hit]]
        is_adv = np.r_[np.zeros(len(st["z_benign"])), np.ones(int(hit.sum()))]
        numbers = ("too few to measure" if np.isnan(st["centre AUC"]) else
                   f"centre AUC {st['centre AUC']:.2f}, kNN acc. {st['kNN accuracy']:.2f}")
        for i, method in enumerate(methods):
            representation_map(axes[i, j], points[(name, method)], pred, is_adv,
                               f"{name} - {method}\n{st['n successful']} of {st['n attacked']} reached their "
                               f"target\n{numbers}", num_classes)
    representation_legend(fig, num_classes)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
