"""Training loops: one resumable epoch loop, and classification trained on it (natural, adversarial, TRADES,
ARCLU's Eq. 10 encoder).

:func:`fit` runs ``epoch_fn(epoch) -> dict of numbers`` for the epochs not yet done. Given a checkpoint
``store`` (any object with ``exists(name)``, ``load(name, map_location)``, ``save(name, obj)`` and
``path(name)``: the book passes an entry of its artefact cache), it saves model, optimiser, RNG state and the
history as ``checkpoint`` after every epoch and the finished run as ``final``, which the next call simply loads;
an interrupted run resumes from its last completed epoch. Without a store it just trains.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Mapping

import torch
import torch.nn.functional as F

from . import attacks
from .defences import ClassifierDefence
from .objectives import objective
from .runtime import autocast, check_precision, device_of, progress_bar


def _state_to_cpu(state):
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, Mapping):
        return {k: _state_to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_state_to_cpu(v) for v in state)
    return state


def fit(store, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
        epoch_fn: Callable[[int], Mapping[str, float]], epochs: int, *, desc: str = "training",
        progress: bool = True, extra: dict[str, torch.Tensor] | None = None) -> list[dict[str, float]]:
    """Train ``model`` for ``epochs`` epochs through the checkpoint ``store`` (None: none); return the per-epoch history (each
    epoch's numbers plus its wall-clock ``seconds``, kept when the result comes from the cache).

    ``extra`` holds tensors that ``epoch_fn`` updates in place (e.g. the best weights so far); they are saved with
    every checkpoint and the final model and restored in place on resume or reload."""
    device = device_of(model)
    extra = {} if extra is None else extra

    def restore(blob):
        for k, v in blob.get("extra", {}).items():
            extra[k].copy_(v)

    def load_final():
        blob = store.load("final", map_location=device)
        model.load_state_dict(blob["model"])
        restore(blob)
        return list(blob["history"])

    if store is not None and store.exists("final"):
        return load_final()
    with store.lock() if hasattr(store, "lock") else contextlib.nullcontext():
        if store is not None and store.exists("final"):  # another process trained it while this one waited
            return load_final()
        return _fit(store, model, optimizer, epoch_fn, epochs, desc, progress, extra, restore, device)


def _fit(store, model, optimizer, epoch_fn, epochs, desc, progress, extra, restore, device) -> list[dict[str, float]]:
    start, history = 0, []
    if store is not None and store.exists("checkpoint"):
        blob = store.load("checkpoint", map_location=device)
        model.load_state_dict(blob["model"])
        optimizer.load_state_dict(blob["optimizer"])
        torch.set_rng_state(blob["rng"])
        restore(blob)
        start, history = int(blob["epoch"]), list(blob["history"])
    bar = progress_bar(range(start, epochs), enabled=progress, desc=desc, initial=start, total=epochs, leave=False)
    for epoch in bar:
        model.train()
        started = time.perf_counter()
        stats = {k: float(v) for k, v in epoch_fn(epoch).items()}
        stats["seconds"] = time.perf_counter() - started
        history.append({"epoch": epoch + 1, **stats})
        bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items()})
        if store is None:
            continue
        store.save("checkpoint", {"model": _state_to_cpu(model.state_dict()),
                                  "optimizer": _state_to_cpu(optimizer.state_dict()),
                                  "rng": torch.get_rng_state(), "epoch": epoch + 1, "history": history,
                                  "extra": _state_to_cpu(extra)})
    model.eval()
    if store is not None:
        store.save("final", {"model": _state_to_cpu(model.state_dict()), "history": history,
                             "extra": _state_to_cpu(extra)})
        store.path("checkpoint").unlink(missing_ok=True)
    return history


# ------------------------------------------------------------------------------------------- plain classification

def eps_scale(progress: float, warmup: float, start: float) -> float:
    """The fraction of the budget in force after ``progress`` epochs of a linear warm-up over ``warmup`` epochs
    that starts at ``start`` (1 once the warm-up is over, or without one)."""
    if warmup <= 0 or progress >= warmup:
        return 1.0
    return start + (1.0 - start) * progress / warmup


def step_schedule(optimizer: torch.optim.Optimizer, lr: float, epoch: int, drops=()) -> None:
    """Set the learning rate of ``epoch``: ``lr`` divided by 10 at each epoch listed in ``drops`` (a step
    schedule that a resumed run reproduces exactly)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * 0.1 ** sum(epoch >= d for d in drops)


def scaled_attack(attack_kwargs: Mapping, scale: float) -> dict:
    """The engine's keywords with ``eps`` and ``step_size`` multiplied by ``scale``."""
    kwargs = dict(attack_kwargs)
    if scale != 1.0:
        kwargs["eps"] = kwargs["eps"] * scale
        if "step_size" in kwargs:
            kwargs["step_size"] = kwargs["step_size"] * scale
    return kwargs


def make_optimizer(params, name: str, lr: float, *, momentum: float = 0.9, weight_decay: float = 0.0):
    """``"adam"`` (GAT's MNIST models) or ``"sgd"`` with momentum (GAT's CIFAR-10 detectors: 0.9, wd 2e-4)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose 'adam' or 'sgd'")


def train_classifier(store, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
                     lr: float = 5e-4, batch_size: int = 32, seed: int = 0, attack_kwargs: Mapping | None = None,
                     optimizer: str = "adam", momentum: float = 0.9, weight_decay: float = 0.0,
                     augment: Callable | None = None, lr_drops=(), loss_fn: Callable | None = None,
                     predict_fn: Callable | None = None, batch_loss: Callable | None = None,
                     warmup: float = 0.0, warmup_from: float = 0.3, precision: str = "fp32",
                     desc: str = "classifier", progress: bool = True) -> list[dict[str, float]]:
    """Cross-entropy training with Adam (GAT's natural MNIST classifier: lr 5e-4, batch 32, 10 epochs) or SGD.

    With ``attack_kwargs`` every batch is first replaced by its PGD adversarial examples (untargeted
    cross-entropy, the engine's keywords): Madry et al.'s adversarial training. ``augment(x, generator)``, if
    given, transforms every batch first (e.g. :func:`advdetect.data.random_crop_flip` for CIFAR-10). The
    learning rate is divided by 10 at each epoch listed in ``lr_drops`` (a step schedule that resumes exactly).
    ``loss_fn(outputs, y)`` and ``predict_fn(outputs) -> classes`` replace cross-entropy and argmax for models
    whose outputs are not logits (ARCLU's Eq. 10 encoder). ``batch_loss(model, x, y, scale) -> (loss, outputs)``
    replaces the whole per-batch loss (TRADES, :func:`advdetect.baselines.trades_loss`); ``scale`` is the
    warm-up's current fraction of the budget (:func:`eps_scale`).

    ``warmup`` (epochs, may be fractional) ramps the training attack's budget linearly, batch by batch, from
    ``warmup_from`` times ``eps`` to ``eps`` (its step size scales with it): adversarial training from the full
    budget at the first step can collapse to a constant classifier on MNIST.

    ``precision="bf16"`` runs the training attack's and the loss's forward passes under bfloat16 autocast
    (:func:`autocast`); the model keeps float32 weights and is evaluated in float32 afterwards."""
    device = device_of(model)
    check_precision(precision)
    optimizer = make_optimizer(model.parameters(), optimizer, lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    adversary = (objective(ClassifierDefence("adversarial training", model), "cross-entropy")
                 if attack_kwargs is not None else None)

    batches = -(-len(y) // batch_size)

    def epoch_fn(epoch: int):
        step_schedule(optimizer, lr, epoch, lr_drops)
        model.train()
        order = torch.randperm(len(y), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for b, start in enumerate(range(0, len(y), batch_size)):
            scale = eps_scale(epoch + b / batches, warmup, warmup_from)
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx].to(device)
            xb = (augment(xb, gen) if augment is not None else xb).to(device)
            with autocast(device, precision):
                if attack_kwargs is not None:
                    model.eval()
                    xb = attacks.attack(adversary, xb, yb, **scaled_attack(attack_kwargs, scale)).x_adv
                    model.train()
                if batch_loss is not None:
                    loss, logits = batch_loss(model, xb, yb, scale)
                else:
                    logits = model(xb).float()
                    loss = loss_fn(logits, yb) if loss_fn is not None else F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += len(idx)
            pred = predict_fn(logits.detach()) if predict_fn is not None else logits.argmax(1)
            correct += int((pred == yb).sum())
            loss_sum += float(loss.detach()) * len(idx)
        return {"loss": loss_sum / total, "train_acc": correct / total}

    return fit(store, model, optimizer, epoch_fn, epochs, desc=desc, progress=progress)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Model outputs for ``x`` in evaluation mode, batched, on the model's device; returned on the CPU."""
    model.eval()
    device = device_of(model)
    return torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    return float((predict(model, x, batch_size).argmax(1) == y).float().mean())


