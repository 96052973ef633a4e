import pytest
import torch

from advdetect import models


@pytest.mark.parametrize("outputs", [1, 10])
def test_madry_cnn_shapes(outputs):
    m = models.MadryCNN(outputs)
    assert m(torch.rand(3, 1, 28, 28)).shape == (3, outputs)
    assert m.features(torch.rand(2, 1, 28, 28)).shape == (2, 1024)
    assert models.MadryCNN(10, width=0.5).fc1.out_features == 512


def test_models_reject_wrong_shapes_with_a_message():
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        models.MadryCNN()(torch.rand(2, 28, 28))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        models.MLP(2)(torch.rand(4, 3))


def test_other_architectures():
    assert models.ArcluEncoder(m=20)(torch.rand(2, 1, 28, 28)).shape == (2, 20)
    assert models.MLP(1, (8,) * 5, 1)(torch.rand(5, 1)).shape == (5, 1)
    assert models.WideResNet(depth=10, widen=1)(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert models.resnet18(width=8)(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert models.count_parameters(models.MLP(2)) == 2 * 500 + 500 + 4 * (500 * 500 + 500) + 501


def test_normalisation_is_inside_the_model():
    m = models.WideResNet(depth=10, widen=1)
    assert torch.allclose(m.normalize(torch.full((1, 3, 2, 2), 0.4914))[0, 0], torch.zeros(2, 2), atol=1e-6)


def test_the_fast_pooling_equals_max_pool2d_with_and_without_a_gradient():
    import torch.nn.functional as F
    h = torch.randn(4, 3, 14, 14)
    with torch.no_grad():
        assert torch.equal(models.max_pool_2x2(h), F.max_pool2d(h, 2))
        odd = torch.randn(2, 3, 7, 7)
        assert torch.equal(models.max_pool_2x2(odd), F.max_pool2d(odd, 2))
    a, b = h.clone().requires_grad_(True), h.clone().requires_grad_(True)
    (ga,) = torch.autograd.grad(models.max_pool_2x2(a).square().sum(), a)
    (gb,) = torch.autograd.grad(F.max_pool2d(b, 2).square().sum(), b)
    assert torch.equal(ga, gb)
