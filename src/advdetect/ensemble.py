"""K networks of one architecture run as ONE batched model (GAT's per-class detectors).

:class:`DetectorBank` stacks the parameters of ``k`` copies of a module (``torch.func.stack_module_state``) and
evaluates them with ``torch.func.functional_call`` under ``torch.func.vmap`` (the MNIST networks by hand, see
:attr:`DetectorBank._grouped`). Three ways to call it:

* ``bank(x)`` - every detector on the same inputs ``x`` of shape ``(B, ...)``: logits ``(B, K)``, column k being
  detector k's logit (the generative classifier's input, GAT Section 3.2);
* ``bank.each(x)`` - detector k on its own inputs ``x[k]``, ``x`` of shape ``(K, B, ...)``: logits ``(K, B)``
  (GAT training, where every detector has its own positives and negatives: one forward and one backward pass
  serve all detectors);
* ``bank.selected(x, which)`` - detector ``which[i]`` on ``x[i]`` only: logits ``(B,)`` (the integrated
  classifier, which consults the predicted class's detector; a tenth of ``bank(x)``'s work).

Parameters are ordinary ``nn.Parameter`` tensors with a leading dimension K, so any optimiser trains all
detectors at once, and :meth:`DetectorBank.detector` returns detector k as a standalone module (for tests and
for single-detector attacks). Batch norm, where the base module has it, must be in evaluation mode (GAT's
CIFAR detectors keep it so while finetuning).
"""

from __future__ import annotations

import copy
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .models import SmallCNN, check_image, max_pool_2x2


def _key(name: str) -> str:
    return name.replace(".", "__")


class DetectorBank(nn.Module):
    """``k`` detectors of one architecture evaluated as one batched model."""

    def __init__(self, models: Sequence[nn.Module]):
        super().__init__()
        if len(models) == 0:
            raise ValueError("DetectorBank needs at least one model")
        self.k = len(models)
        params, buffers = stack_module_state(list(models))
        self._names = list(params)
        self._buffer_names = list(buffers)
        self.stacked = nn.ParameterDict({_key(n): nn.Parameter(p.detach().clone()) for n, p in params.items()})
        for n, b in buffers.items():
            self.register_buffer("buf__" + _key(n), b.detach().clone())
        template = copy.deepcopy(models[0]).to("meta")
        object.__setattr__(self, "_template", template)  # not a submodule: it holds no state

    def _stacked_params(self) -> dict[str, torch.Tensor]:
        return {n: self.stacked[_key(n)] for n in self._names}

    def _stacked_buffers(self) -> dict[str, torch.Tensor]:
        return {n: getattr(self, "buf__" + _key(n)) for n in self._buffer_names}

    def _one(self, params, buffers, x):
        out = functional_call(self._template, (params, buffers), (x,))
        return out.reshape(out.shape[0], -1)[:, 0]  # a detector has one logit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of every detector on the same inputs: ``(B, ...) -> (B, K)``. The two-convolution MNIST
        networks run one detector after another here: on the same inputs a CPU computes K ordinary
        convolutions faster than one grouped convolution over K copies of the batch (an attack's forward and
        input gradient at batch 500, 2 cores: 1.3-1.4x at widths 0.5 and 1, equal at 0.25)."""
        if self._grouped:
            return torch.stack([self._small_one(j, x) for j in range(self.k)], 1)
        out = vmap(self._one, in_dims=(0, 0, None))(self._stacked_params(), self._stacked_buffers(), x)
        return out.transpose(0, 1)

    def selected(self, x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Detector ``which[i]``'s logit on ``x[i]``: ``(B, ...), (B,) -> (B,)``. Each detector runs on the
        inputs that ask for it only, so this costs about one detector's forward pass per input instead of K
        (GAT's integrated classifier needs the detector of the predicted class only)."""
        which = torch.as_tensor(which, device=x.device).long()
        if which.shape != x.shape[:1]:
            raise ValueError(f"selected() needs one detector index per input: got {tuple(which.shape)} for a batch "
                             f"of {x.shape[0]}")
        if len(which) and (int(which.min()) < 0 or int(which.max()) >= self.k):
            raise ValueError(f"detector indices must lie in [0, {self.k}), got {which.min()}..{which.max()}")
        order, parts = [], []
        for j in which.unique().tolist():
            idx = (which == j).nonzero().squeeze(1)
            order.append(idx)
            parts.append(self._small_one(j, x[idx]) if self._grouped else
                         self._one({n: v[j] for n, v in self._stacked_params().items()},
                                   {n: v[j] for n, v in self._stacked_buffers().items()}, x[idx]))
        if not parts:
            return x.new_zeros(0)
        values, idx = torch.cat(parts), torch.cat(order)
        return values.new_empty(len(which)).scatter(0, idx, values)

    def _small_one(self, j: int, x: torch.Tensor) -> torch.Tensor:
        """Detector ``j`` of a :class:`~advdetect.models.SmallCNN` bank on ``x``: ``(B, C, H, W) -> (B,)``."""
        p, b, t = self.stacked, self._stacked_buffers(), self._template
        check_image(x, t.in_channels, t.image_size, f"{type(t).__name__} detector")
        h = (x - b["normalize.mean"][j]) / b["normalize.std"][j]
        for name in ("conv1", "conv2"):
            w = p[f"{name}__weight"][j]
            h = max_pool_2x2(F.relu(F.conv2d(h, w, p[f"{name}__bias"][j], padding=w.shape[-1] // 2)))
        h = F.relu(F.linear(h.flatten(1), p["fc1__weight"][j], p["fc1__bias"][j]))
        return F.linear(h, p["fc2__weight"][j], p["fc2__bias"][j])[:, 0]

    def each(self, x: torch.Tensor) -> torch.Tensor:
        """Detector k on inputs ``x[k]``: ``(K, B, ...) -> (K, B)``."""
        if x.shape[0] != self.k:
            raise ValueError(f"each() expects inputs of shape (K={self.k}, B, ...), got {tuple(x.shape)}")
        if self._grouped:
            return self._grouped_each(x)
        return vmap(self._one, in_dims=(0, 0, 0))(self._stacked_params(), self._stacked_buffers(), x)

    @property
    def _grouped(self) -> bool:
        """The two-convolution MNIST networks (:class:`~advdetect.models.SmallCNN`) run by hand: their training
        (:meth:`each`) as grouped convolutions and batched matrix products, which a CPU executes several times
        faster than vmap's batching of small convolutions; every other architecture goes through
        ``torch.func.vmap``."""
        return isinstance(self._template, SmallCNN) and self._template.num_outputs == 1

    def _grouped_each(self, x: torch.Tensor) -> torch.Tensor:
        p, b = self.stacked, self._stacked_buffers()
        k, n = x.shape[:2]
        t = self._template
        _check = getattr(t, "in_channels", x.shape[2]), getattr(t, "image_size", x.shape[-1])
        if x.ndim != 5 or x.shape[2] != _check[0] or x.shape[3] != _check[1] or x.shape[4] != _check[1]:
            raise ValueError(f"{type(t).__name__} detectors expect inputs of shape (K, N, {_check[0]}, {_check[1]}, "
                             f"{_check[1]}), got {tuple(x.shape)}")
        h = (x - b["normalize.mean"]) / b["normalize.std"]
        h = h.transpose(0, 1).reshape(n, k * x.shape[2], *x.shape[3:]).contiguous(memory_format=torch.channels_last)
        for name in ("conv1", "conv2"):
            w = p[f"{name}__weight"]
            h = F.conv2d(h, w.reshape(-1, *w.shape[2:]), p[f"{name}__bias"].reshape(-1), padding=w.shape[-1] // 2,
                         groups=k)
            h = max_pool_2x2(F.relu(h))
        h = h.reshape(n, k, -1).transpose(0, 1)  # (K, N, features), each detector's features in its own order
        h = F.relu(torch.baddbmm(p["fc1__bias"].unsqueeze(1), h, p["fc1__weight"].transpose(1, 2)))
        return torch.baddbmm(p["fc2__bias"].unsqueeze(1), h, p["fc2__weight"].transpose(1, 2))[..., 0]

    def detector(self, k: int) -> nn.Module:
        """Detector ``k`` as a standalone module (a copy of its weights, on the bank's device)."""
        device = next(iter(self.stacked.values())).device
        model = copy.deepcopy(self._template).to_empty(device=device)
        state = {n: self.stacked[_key(n)][k].detach().clone() for n in self._names}
        state.update({n: b[k].clone() for n, b in self._stacked_buffers().items()})
        model.load_state_dict(state)
        return model.eval()


def bank_from_classifier(classifier: nn.Module) -> DetectorBank:
    """GAT's CIFAR-10 initialisation: detector k is the natural classifier's subnetwork for logit k (a copy of
    the network whose last linear layer keeps row k only). Batch norm stays in inference mode while the bank is
    finetuned (the bank evaluates a template in eval mode with the stacked running statistics)."""
    last = [m for m in classifier.modules() if isinstance(m, nn.Linear)][-1]
    models = []
    for k in range(last.out_features):
        m = copy.deepcopy(classifier).eval()
        head = [mod for mod in m.modules() if isinstance(mod, nn.Linear)][-1]
        new = nn.Linear(head.in_features, 1, bias=head.bias is not None).to(head.weight.device)
        with torch.no_grad():
            new.weight.copy_(head.weight[k:k + 1])
            if head.bias is not None:
                new.bias.copy_(head.bias[k:k + 1])
        _replace_module(m, head, new)
        if hasattr(m, "num_outputs"):
            m.num_outputs = 1
        models.append(m)
    return DetectorBank(models)


def _replace_module(root: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for name, child in root.named_children():
        if child is old:
            setattr(root, name, new)
            return
        _replace_module(child, old, new)
