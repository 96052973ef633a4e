"""Interactive views for JupyterLab, each with a static twin for the rendered book.

``threshold_view`` draws, for one rejection threshold T, where T sits on the detection (TPR/FPR) and the
classification (accuracy/error) curves and which perturbed test images it rejects; ``threshold_explorer``
wraps it in an ipywidgets slider. Each ``*_explorer`` decides for itself what to show: the live widget in
JupyterLab, and when running headless (:func:`advdetect.runtime.headless`: the book build, CI) its static twin
- a few fixed views - without ever creating a widget. A live widget in a headless run would only leave its text
repr in the book (papermill saves no widget state), and its Output-widget redraws are what hung the build.
"""

from __future__ import annotations

import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Patch
import torch
from IPython.display import display

from . import metrics, synthesis
from .metrics import _np
from .plotting import image_table
from .runtime import headless


def _show(live, static) -> None:
    """Display ``live()`` (a widget) when interactive; when headless draw ``static()`` and create no widget."""
    if headless():
        static()
    else:
        display(live())


def threshold_view(threshold: float, *, clean_scores, clean_pred, clean_y, adv_scores, adv_pred, adv_y, adv_images,
                   title: str = "", n_images: int = 16):
    """One threshold: TPR/FPR and accuracy/error at T on their curves, and perturbed images accepted or rejected."""
    det = metrics.detection_curve(clean_scores, adv_scores, adv_pred, adv_y)
    cls = metrics.classification_curve(clean_scores, clean_pred, clean_y, adv_scores, adv_pred, adv_y)
    cs, asc, ap, ay = _np(clean_scores), _np(adv_scores), _np(adv_pred), _np(adv_y)
    tpr = float((cs >= threshold).mean())
    fpr = float(((asc >= threshold) & (ap != ay)).mean())
    acc = float(((cs >= threshold) & (_np(clean_pred) == _np(clean_y))).mean())
    cols = max(1, n_images // 2)
    fig = plt.figure(figsize=(10, 6.6), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.4, 1])
    ax1, ax2 = top.subplots(1, 2)
    image_axes = bottom.subplots(2, cols).ravel()
    ax1.plot(det.x, det.y)
    ax1.plot([fpr], [tpr], "o", color="k")
    ax1.set(xlabel="FPR on perturbed data", ylabel="TPR on clean data", title=f"T = {threshold:.2f}: "
            f"TPR {tpr:.3f}, FPR {fpr:.3f}", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    ax2.plot(cls.x, cls.y)
    ax2.plot([fpr], [acc], "o", color="k")
    ax2.set(xlabel="error on perturbed data", ylabel="accuracy on clean data", title=f"accuracy {acc:.3f}, "
            f"error {fpr:.3f}", xlim=(-0.02, 1.02), ylim=(-0.02, 1.02))
    imgs = _np(adv_images)[:n_images]
    for ax in image_axes[len(imgs):]:
        ax.axis("off")
    for i, img in enumerate(imgs):
        ax = image_axes[i]
        ax.imshow(img.transpose(1, 2, 0).squeeze(), cmap="gray", vmin=0, vmax=1)
        rejected = asc[i] < threshold
        ax.set_title("rejected" if rejected else f"accepted as {ap[i]}", fontsize=8,
                     color="tab:green" if rejected or ap[i] == ay[i] else "tab:red")
        ax.axis("off")
    if len(imgs):
        # outside the images: constrained layout keeps room for a figure legend placed "outside"
        fig.legend(handles=[Patch(color="tab:green", label="rejected, or accepted as its true class"),
                            Patch(color="tab:red", label="accepted as a wrong class: the attack succeeds")],
                   loc="outside lower center", ncol=2, fontsize=8, frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def threshold_explorer(*, static_thresholds: dict | None = None, **kwargs) -> None:
    """An ipywidgets slider over the threshold that redraws :func:`threshold_view`; headless, the views at
    ``static_thresholds`` (label -> threshold) instead."""
    def static():
        for label, t in (static_thresholds or {}).items():
            threshold_view(t, **kwargs, title=label)
            plt.show()

    _show(lambda: _threshold_widget(**kwargs), static)


def _threshold_widget(**kwargs):
    scores = np.concatenate([_np(kwargs["clean_scores"]), _np(kwargs["adv_scores"])])
    lo, hi = float(np.quantile(scores, 0.01)), float(np.quantile(scores, 0.99))
    slider = widgets.FloatSlider(value=float(np.median(_np(kwargs["clean_scores"]))), min=lo, max=hi,
                                 step=(hi - lo) / 200, description="threshold", continuous_update=False)

    def show(threshold):
        threshold_view(threshold, **kwargs)
        plt.show()

    return widgets.interactive(show, threshold=slider)


def asr_view(fpr: float, curves: dict, erocs: dict, title: str = ""):
    """ARCLU's operating point: ASR against the false-positive rate of the per-class thresholds, one curve per
    (model, attack) in ``curves`` (``name -> (fprs, asrs)``), with the ASR at ``fpr`` marked and listed beside
    each model's EROC (computed once, over the images eligible at the first operating point)."""
    fig, ax = plt.subplots(figsize=(10, 4.2), layout="constrained")
    lines = []
    for name, (fprs, asrs) in curves.items():
        fprs, asrs = np.asarray(fprs), np.asarray(asrs)
        at = float(np.interp(np.log(fpr), np.log(fprs), asrs))
        (line,) = ax.plot(100 * fprs, asrs, label=f"{name}: ASR {at:.3f}, EROC {erocs[name]:.3f}")
        ax.plot([100 * fpr], [at], "o", color=line.get_color())
        lines.append(at)
    ax.axvline(100 * fpr, color="grey", lw=0.8, ls=":")
    ax.set(xscale="log", xlabel="false positives on held-out benign data (%)", ylabel="attack success ratio",
           ylim=(-0.02, 1.02), title=title or f"false-positive rate {100 * fpr:.3g}%")
    fig.legend(fontsize=7, loc="outside right center", frameon=False)   # beside the axes, never over a curve
    return fig


def asr_explorer(curves: dict, erocs: dict, *, fpr: float = 0.01, title: str = "") -> None:
    """An ipywidgets log-slider over the false-positive rate that redraws :func:`asr_view`; headless, the view
    at ``fpr`` instead."""
    def static():
        asr_view(fpr, curves, erocs, title=title)
        plt.show()

    _show(lambda: _asr_widget(curves, erocs, fpr), static)


def _asr_widget(curves: dict, erocs: dict, fpr: float):
    slider = widgets.FloatLogSlider(value=fpr, base=10, min=-3, max=np.log10(0.5), step=0.05,
                                    description="FPR", readout_format=".3f", continuous_update=False)

    def show(fpr):
        asr_view(fpr, curves, erocs)
        plt.show()

    return widgets.interactive(show, fpr=slider)


def attack_path_view(paths: dict, steps, *, title: str = "", caption: str = "logit {:.1f}"):
    """The path of one attack per row: ``paths`` maps a row label to (images (S, C, H, W), logits (S,)) at the
    ``steps``; each image is captioned with its logit (GAT Fig 18's layout)."""
    rows = list(paths)
    images = np.stack([_np(paths[r][0]) for r in rows])
    captions = [[caption.format(float(v)) for v in _np(paths[r][1])] for r in rows]
    fig = plt.figure(figsize=(1.05 * len(steps) + 0.8, 1.2 * len(rows) + 0.4), layout="constrained")
    image_table(fig, images, captions, row_labels=rows, col_labels=[f"step {int(t)}" for t in steps], title=title)
    return fig


def synthesis_explorer(models: dict, x, y, gaussians, *, max_steps: int = 200, num_classes: int = 10,
                       static: dict | None = None) -> None:
    """Pick a starting point (a test image of ``x``/``y``, a sample of the class-conditional ``gaussians`` or a
    clipped N(0, 1) noise image, chosen by index or seed), a target class and a budget, press *Run*, and watch
    every model of ``models`` (name -> defence) raise the target's logit: five snapshots of each attack with the
    logit under each image (:func:`attack_path_view`). ``x`` (N, C, H, W) and labels ``y`` are tensors.
    Headless, one fixed path instead: test image 0 toward ``static["target"]`` in L2 within ``static["eps"]``,
    ``static["steps"]`` steps of ``static["step_size"]``."""
    def draw(x0, target, norm, eps, steps, step_size, title):
        marks = synthesis.even_marks(steps)
        paths = {}
        for name, model in models.items():
            p = synthesis.attack_path(model, x0, torch.tensor([target]), norm=norm, eps=eps, steps=steps,
                                      step_size=step_size, marks=marks)
            paths[name] = (p["images"][0], p["logits"][0])
        attack_path_view(paths, marks, title=title)
        plt.show()

    def static_view():
        s = static or {"target": 1, "eps": 30.0, "steps": 60, "step_size": 0.5}
        draw(torch.as_tensor(x[:1]).float(), s["target"], "l2", s["eps"], s["steps"], s["step_size"],
             f"test image 0 (class {int(y[0])}) toward class {s['target']}")

    _show(lambda: _synthesis_widget(draw, x, y, gaussians, max_steps, num_classes), static_view)


def _synthesis_widget(draw, x, y, gaussians, max_steps: int, num_classes: int):
    start = widgets.Dropdown(options=["test image", "Gaussian sample", "noise"], value="test image",
                             description="start")
    index = widgets.IntSlider(value=0, min=0, max=len(x) - 1, description="index / seed")
    target = widgets.Dropdown(options=list(range(num_classes)), value=1, description="target")
    norm = widgets.Dropdown(options=[("L2", "l2"), ("L-inf", "linf")], value="l2", description="norm")
    eps = widgets.FloatLogSlider(value=30.0, base=10, min=-2, max=2, step=0.05, description="eps (inf: 100)")
    steps = widgets.IntSlider(value=min(60, max_steps), min=5, max=max_steps, step=5, description="steps")
    step_size = widgets.FloatLogSlider(value=0.5, base=10, min=-3, max=0.5, step=0.05, description="step size")

    def show(start, index, target, norm, eps, steps, step_size):
        origin = f"a {start}"
        if start == "test image":
            x0 = torch.as_tensor(x[index:index + 1]).float()
            origin = f"test image {index} (class {int(y[index])})"
        elif start == "Gaussian sample":
            x0 = gaussians.sample([target], torch.Generator().manual_seed(index))
        else:
            x0 = synthesis.noise_image(tuple(x.shape[1:]), seed=index)
        draw(x0, target, norm, math.inf if eps >= 99 else eps, steps, step_size,
             f"raising class {target}'s logit from {origin} ({norm}, eps {eps:.3g})")

    return widgets.interactive(show, {"manual": True, "manual_name": "Run"}, start=start, index=index, target=target,
                               norm=norm, eps=eps, steps=steps, step_size=step_size)
