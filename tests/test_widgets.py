import matplotlib

matplotlib.use("Agg")

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
