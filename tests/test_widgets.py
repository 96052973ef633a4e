import matplotlib

matplotlib.use("Agg")

import json  # noqa: E402

import ipywidgets  # noqa: E402
import nbformat  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from advdetect import widgets  # noqa: E402


@pytest.fixture
def interactive(monkeypatch):
    """Run as in JupyterLab (not headless); collect what the explorers display."""
    monkeypatch.delenv("ADVDETECT_HEADLESS", raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    shown = []
    monkeypatch.setattr(widgets, "display", shown.append)
    return shown


@pytest.fixture
def headless(monkeypatch):
    """Run as the book build does; fail if any widget is created."""
    monkeypatch.setenv("ADVDETECT_HEADLESS", "1")

    def no_widget(*args, **kwargs):
        raise AssertionError("a live widget was created in a headless run")

    monkeypatch.setattr(ipywidgets.Widget, "__init__", no_widget)
    monkeypatch.setattr(widgets, "display", no_widget)


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
    legend = [t.get_text() for lg in fig.legends for t in lg.get_texts()]
    assert any("attack succeeds" in t for t in legend)            # the red titles are explained on the figure
    fig.canvas.draw()                                             # ... below the images, not over them
    lowest_image = min(ax.get_window_extent().y0 for sub in fig.subfigs for ax in sub.axes if ax.images)
    assert fig.legends[0].get_window_extent().y1 <= lowest_image + 1


def test_threshold_explorer_is_a_slider_widget_interactively_and_static_views_headless(interactive, monkeypatch):
    assert widgets.threshold_explorer(**_view()) is None
    (w,) = interactive
    assert w.children[0].description == "threshold"
    monkeypatch.setenv("ADVDETECT_HEADLESS", "1")
    monkeypatch.setattr(ipywidgets.Widget, "__init__", lambda *a, **k: pytest.fail("widget created headless"))
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    monkeypatch.setattr(plt, "show", lambda: None)        # keep the figures to count them
    widgets.threshold_explorer(**_view(), static_thresholds={"a": 0.0, "b": 1.0})
    assert len(plt.get_fignums()) == before + 2 and len(interactive) == 1
    plt.close("all")


def test_asr_view_reads_the_curve_at_the_chosen_rate_and_the_explorer_is_a_slider():
    curves = {"model": (np.array([0.001, 0.01, 0.1]), np.array([0.9, 0.5, 0.1]))}
    fig = widgets.asr_view(0.01, curves, {"model": 0.97})
    label = fig.legends[0].get_texts()[0].get_text()
    assert label == "model: ASR 0.500, EROC 0.970"
    fig.canvas.draw()                                     # the legend sits beside the axes, not over the curves
    assert fig.legends[0].get_window_extent().x0 >= fig.axes[0].get_window_extent().x1 - 1
    w = widgets._asr_widget(curves, {"model": 0.97}, 0.01)
    assert w.children[0].description == "FPR"


def test_explorers_create_no_widget_when_headless(headless):
    curves = {"model": (np.array([0.001, 0.01, 0.1]), np.array([0.9, 0.5, 0.1]))}
    assert widgets.asr_explorer(curves, {"model": 0.97}) is None
    assert widgets.threshold_explorer(**_view(), static_thresholds={"t": 0.0}) is None


def test_attack_path_view_captions_each_image_with_its_logit():
    paths = {"a": (torch.rand(3, 1, 8, 8), torch.tensor([0.0, 1.5, 3.25])),
             "b": (torch.rand(3, 1, 8, 8), torch.tensor([-1.0, 0.0, 2.0]))}
    fig = widgets.attack_path_view(paths, [0, 5, 10], title="t")
    labels = [ax.get_xlabel() for ax in fig.axes]
    assert labels[:3] == ["logit 0.0", "logit 1.5", "logit 3.2"] and len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == ["step 0", "step 5", "step 10"]


def test_synthesis_explorer_runs_the_chosen_attack_on_every_model(interactive):
    from torch import nn

    from advdetect import synthesis

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    x = torch.rand(5, 1, 8, 8)
    y = torch.arange(5) % 3
    g = synthesis.ClassGaussians.fit(torch.rand(30, 1, 8, 8), torch.arange(30) % 3, 3)
    widgets.synthesis_explorer({"m": model}, x, y, g, max_steps=20, num_classes=3)
    (w,) = interactive
    names = [c.description for c in w.children[:7]]
    assert names[:3] == ["start", "index / seed", "target"]
    for start in ("test image", "Gaussian sample", "noise"):   # what the Run button calls
        w.f(start=start, index=1, target=2, norm="l2", eps=1.0, steps=8, step_size=0.1)
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_explorer_cell_executes_headlessly_under_papermill_within_a_timeout(tmp_path, monkeypatch):
    """The cell that hung chapter 05's build: an explorer as a cell's last call, executed by papermill as the
    book build does (headless, per-cell timeout). It must finish, show a figure and leave no widget behind."""
    import papermill as pm

    monkeypatch.setenv("ADVDETECT_HEADLESS", "1")    # inherited by the kernel, as in `make book`
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(
        "import numpy as np\nimport advdetect as ad\n"
        "curves = {'model': (np.array([0.001, 0.01, 0.1]), np.array([0.9, 0.5, 0.1]))}\n"
        "ad.widgets.asr_explorer(curves, {'model': 0.97}, fpr=0.01)")]
    src, out = tmp_path / "explorer.ipynb", tmp_path / "explorer.out.ipynb"
    nbformat.write(nb, src)
    pm.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False, execution_timeout=120,
                        request_save_on_cell_execute=False)
    outputs = json.loads(out.read_text())["cells"][0]["outputs"]
    assert any("image/png" in o.get("data", {}) for o in outputs)
    text = json.dumps(outputs)
    assert "interactive(" not in text and "application/vnd.jupyter.widget-view+json" not in text
