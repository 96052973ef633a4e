import pytest
import torch

from advdetect.ensemble import DetectorBank
from advdetect.models import MadryCNN


def _models(k=4):
    torch.manual_seed(0)
    return [MadryCNN(1, width=0.25) for _ in range(k)]


def test_bank_equals_k_separate_models_on_the_same_weights():
    models = _models()
    bank = DetectorBank(models)
    x = torch.rand(5, 1, 28, 28)
    expected = torch.cat([m(x) for m in models], dim=1)
    assert torch.allclose(bank(x), expected, atol=1e-5)
    xs = torch.rand(4, 3, 1, 28, 28)
    each = bank.each(xs)
    assert each.shape == (4, 3)
    for k, m in enumerate(models):
        assert torch.allclose(each[k], m(xs[k])[:, 0], atol=1e-5)
        assert torch.allclose(bank.detector(k)(x), m(x), atol=1e-5)


def test_one_backward_pass_trains_every_detector_like_separate_training():
    models = _models(3)
    bank = DetectorBank(models)
    xs = torch.rand(3, 6, 1, 28, 28)
    bank.each(xs).pow(2).sum().backward()
    for k, m in enumerate(models):
        m(xs[k]).pow(2).sum().backward()
        assert torch.allclose(bank.stacked["conv1__weight"].grad[k], m.conv1.weight.grad, atol=1e-4)
        assert torch.allclose(bank.stacked["fc2__bias"].grad[k], m.fc2.bias.grad, atol=1e-4)


def test_bank_checks_shapes_and_round_trips_its_state():
    bank = DetectorBank(_models(2))
    with pytest.raises(ValueError, match="K=2"):
        bank.each(torch.rand(3, 1, 1, 28, 28))
    clone = DetectorBank(_models(2))
    clone.load_state_dict(bank.state_dict())
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(clone(x), bank(x))


def test_other_architectures_go_through_vmap_and_agree_too():
    from advdetect.models import MLP

    torch.manual_seed(0)
    models = [MLP(3, (5,), 1) for _ in range(3)]
    bank = DetectorBank(models)
    assert not bank._grouped
    x = torch.rand(4, 3)
    assert torch.allclose(bank(x), torch.cat([m(x) for m in models], 1), atol=1e-6)
    assert torch.allclose(bank.each(torch.stack([x] * 3))[1], models[1](x)[:, 0], atol=1e-6)


@pytest.mark.parametrize("kind", ["cnn", "mlp"])
def test_selected_is_the_chosen_detector_per_input_with_its_gradient(kind):
    from advdetect.models import MLP

    torch.manual_seed(0)
    models = _models(4) if kind == "cnn" else [MLP(3, (5,), 1) for _ in range(4)]
    bank = DetectorBank(models)
    assert bank._grouped == (kind == "cnn")
    x = torch.rand(9, 1, 28, 28) if kind == "cnn" else torch.rand(9, 3)
    which = torch.tensor([3, 0, 0, 2, 3, 3, 0, 2, 2])   # detector 1 asked for by no input
    xa = x.clone().requires_grad_(True)
    got = bank.selected(xa, which)
    xb = x.clone().requires_grad_(True)
    full = bank(xb)
    want = full.gather(1, which[:, None])[:, 0]
    assert got.shape == (9,)
    assert torch.allclose(got, want, atol=1e-5)
    (ga,), (gb,) = torch.autograd.grad(got.sum(), xa), torch.autograd.grad(want.sum(), xb)
    assert torch.allclose(ga, gb, atol=1e-5)
    assert bank.selected(x[:0], which[:0]).shape == (0,)


def test_selected_rejects_a_wrong_number_or_range_of_indices():
    bank = DetectorBank(_models(2))
    x = torch.rand(3, 1, 28, 28)
    with pytest.raises(ValueError, match="one detector index per input"):
        bank.selected(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        bank.selected(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        bank.selected(torch.rand(3, 1, 27, 27), torch.tensor([0, 1, 1]))
