import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from advdetect import widgets  # noqa: E402


def _view():
    torch.manual_seed(0)
    return dict(clean_scores=torch.randn(20) + 2, clean_pred=torch.arange(20) % 10, clean_y=torch.arange(20) % 10,
                adv_scores=torch.randn(20), adv_pred=(torch.arange(20) + 1) % 10, adv_y=torch.arange(20) % 10,
                adv_images=torch.rand(20, 1, 28, 28))


def test_threshold_view_marks_rejections_and_reports_the_operating_point():
    fig = widgets.threshold_view(0.0, **_view())
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("T = 0.00: TPR")
    assert sum(t == "rejected" for t in titles) == int((_view()["adv_scores"][:16] < 0).sum())


def test_threshold_explorer_is_a_slider_widget():
    w = widgets.threshold_explorer(**_view())
    assert w.children[0].description == "threshold"


def test_asr_view_reads_the_curve_at_the_chosen_rate_and_the_explorer_is_a_slider():
    curves = {"model": (np.array([0.001, 0.01, 0.1]), np.array([0.9, 0.5, 0.1]))}
    fig = widgets.asr_view(0.01, curves, {"model": 0.97})
    label = fig.axes[0].get_legend().get_texts()[0].get_text()
    assert label == "model: ASR 0.500, EROC 0.970"
    w = widgets.asr_explorer(curves, {"model": 0.97})
    assert w.children[0].description == "FPR"
