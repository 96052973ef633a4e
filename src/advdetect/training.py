"""Training loops: one resumable epoch loop with the artefact cache, and the trainings built on it.

:func:`fit` runs ``epoch_fn(epoch) -> dict of numbers`` for the epochs not yet done, saving model, optimiser,
RNG state and the history to the cache entry's ``checkpoint`` after every epoch; a finished run is stored as
``final`` and simply loaded on the next call. An interrupted run resumes from its last completed epoch.
"""

from __future__ import annotations

import time
from typing import Callable, Mapping

import torch
import torch.nn.functional as F

from . import attacks
from .cache import Entry
from .losses import untargeted_cross_entropy
from .runtime import device_of, progress_bar


def _state_to_cpu(state):
    if isinstance(state, torch.Tensor):
        return state.detach().cpu()
    if isinstance(state, Mapping):
        return {k: _state_to_cpu(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(_state_to_cpu(v) for v in state)
    return state


def fit(entry: Entry, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
        epoch_fn: Callable[[int], Mapping[str, float]], epochs: int, *, desc: str = "training",
        progress: bool = True, extra: dict[str, torch.Tensor] | None = None) -> list[dict[str, float]]:
    """Train ``model`` for ``epochs`` epochs through the cache ``entry``; return the per-epoch history (each
    epoch's numbers plus its wall-clock ``seconds``, kept when the result comes from the cache).

    ``extra`` holds tensors that ``epoch_fn`` updates in place (e.g. the best weights so far); they are saved with
    every checkpoint and the final model and restored in place on resume or reload."""
    device = device_of(model)
    extra = {} if extra is None else extra

    def restore(blob):
        for k, v in blob.get("extra", {}).items():
            extra[k].copy_(v)

    if entry.exists("final"):
        blob = entry.load("final", map_location=device)
        model.load_state_dict(blob["model"])
        restore(blob)
        return list(blob["history"])
    start, history = 0, []
    if entry.exists("checkpoint"):
        blob = entry.load("checkpoint", map_location=device)
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
        entry.save("checkpoint", {"model": _state_to_cpu(model.state_dict()),
                                  "optimizer": _state_to_cpu(optimizer.state_dict()),
                                  "rng": torch.get_rng_state(), "epoch": epoch + 1, "history": history,
                                  "extra": _state_to_cpu(extra)})
    model.eval()
    entry.save("final", {"model": _state_to_cpu(model.state_dict()), "history": history,
                         "extra": _state_to_cpu(extra)})
    entry.path("checkpoint").unlink(missing_ok=True)
    return history


# ------------------------------------------------------------------------------------- GAT on synthetic data (App F)

def gat_binary_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, positives: torch.Tensor,
                    negatives: torch.Tensor, *, attack_kwargs: Mapping | None) -> float:
    """One optimiser step of GAT's objective (Eq. 5) for a single detector.

    Negatives are PGD-perturbed to *raise* the detector's logit (``attack_kwargs`` of the engine), or used as
    they are when ``attack_kwargs`` is None (ordinary discriminative training); sigmoid cross-entropy with
    positives labelled 1 and negatives 0.
    """
    if attack_kwargs is not None:
        model.eval()
        negatives = attacks.attack(lambda x, _: -model(x).squeeze(1), negatives, None, **attack_kwargs).x_adv
        model.train()
    x = torch.cat([positives, negatives])
    target = torch.cat([torch.ones(len(positives)), torch.zeros(len(negatives))]).to(x.device)
    loss = F.binary_cross_entropy_with_logits(model(x).squeeze(1), target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def train_binary(entry: Entry, model: torch.nn.Module, positives: torch.Tensor, negatives: torch.Tensor, *,
                 steps: int, lr: float, batch: int | None, attack_kwargs: Mapping | None, seed: int,
                 warmup_steps: int = 0, steps_per_epoch: int = 50, desc: str = "training") -> list[dict[str, float]]:
    """Train a one-logit detector with GAT (``attack_kwargs`` given) or discriminatively (None), through the
    cache; ``batch`` positives and as many negatives are drawn per step (all of them if None). The first
    ``warmup_steps`` steps are discriminative (clean negatives), as in the authors' synthetic notebooks."""
    device = device_of(model)
    positives, negatives = positives.to(device), negatives.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)

    def draw(t: torch.Tensor) -> torch.Tensor:
        if batch is None or batch >= len(t):
            return t
        return t[torch.randperm(len(t), generator=gen)[:batch].to(t.device)]

    def epoch_fn(epoch: int):
        losses = []
        for i in range(steps_per_epoch):
            warm = epoch * steps_per_epoch + i < warmup_steps
            losses.append(gat_binary_step(model, optimizer, draw(positives), draw(negatives),
                                          attack_kwargs=None if warm else attack_kwargs))
        return {"loss": sum(losses) / len(losses)}

    return fit(entry, model, optimizer, epoch_fn, max(1, steps // steps_per_epoch), desc=desc)


# ------------------------------------------------------------------------------------------- plain classification

def make_optimizer(params, name: str, lr: float, *, momentum: float = 0.9, weight_decay: float = 0.0):
    """``"adam"`` (GAT's MNIST models) or ``"sgd"`` with momentum (GAT's CIFAR-10 detectors: 0.9, wd 2e-4)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}: choose 'adam' or 'sgd'")


def train_classifier(entry: Entry, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int,
                     lr: float = 5e-4, batch_size: int = 32, seed: int = 0, attack_kwargs: Mapping | None = None,
                     optimizer: str = "adam", momentum: float = 0.9, weight_decay: float = 0.0,
                     augment: Callable | None = None, lr_drops=(), loss_fn: Callable | None = None,
                     predict_fn: Callable | None = None, batch_loss: Callable | None = None,
                     desc: str = "classifier", progress: bool = True) -> list[dict[str, float]]:
    """Cross-entropy training with Adam (GAT's natural MNIST classifier: lr 5e-4, batch 32, 10 epochs) or SGD.

    With ``attack_kwargs`` every batch is first replaced by its PGD adversarial examples (untargeted
    cross-entropy, the engine's keywords): Madry et al.'s adversarial training. ``augment(x, generator)``, if
    given, transforms every batch first (e.g. :func:`advdetect.data.random_crop_flip` for CIFAR-10). The
    learning rate is divided by 10 at each epoch listed in ``lr_drops`` (a step schedule that resumes exactly).
    ``loss_fn(outputs, y)`` and ``predict_fn(outputs) -> classes`` replace cross-entropy and argmax for models
    whose outputs are not logits (ARCLU's Eq. 10 encoder). ``batch_loss(model, x, y) -> (loss, outputs)``
    replaces the whole per-batch loss (TRADES, :func:`advdetect.defences.trades_loss`)."""
    device = device_of(model)
    optimizer = make_optimizer(model.parameters(), optimizer, lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)

    def epoch_fn(epoch: int):
        for group in optimizer.param_groups:
            group["lr"] = lr * 0.1 ** sum(epoch >= d for d in lr_drops)
        model.train()
        order = torch.randperm(len(y), generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for start in range(0, len(y), batch_size):
            idx = order[start:start + batch_size]
            xb, yb = x[idx], y[idx].to(device)
            xb = (augment(xb, gen) if augment is not None else xb).to(device)
            if attack_kwargs is not None:
                model.eval()
                xb = attacks.attack(untargeted_cross_entropy(model), xb, yb, **attack_kwargs).x_adv
                model.train()
            if batch_loss is not None:
                loss, logits = batch_loss(model, xb, yb)
            else:
                logits = model(xb)
                loss = loss_fn(logits, yb) if loss_fn is not None else F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += len(idx)
            pred = predict_fn(logits.detach()) if predict_fn is not None else logits.argmax(1)
            correct += int((pred == yb).sum())
            loss_sum += float(loss.detach()) * len(idx)
        return {"loss": loss_sum / total, "train_acc": correct / total}

    return fit(entry, model, optimizer, epoch_fn, epochs, desc=desc, progress=progress)


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """Model outputs for ``x`` in evaluation mode, batched, on the model's device; returned on the CPU."""
    model.eval()
    device = device_of(model)
    return torch.cat([model(x[i:i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    return float((predict(model, x, batch_size).argmax(1) == y).float().mean())


# ------------------------------------------------------------------------------------------ GAT on images (Eq. 5)

def train_gat(entry: Entry, bank, x: torch.Tensor, y: torch.Tensor, *, epochs: int, m: int, lr: float,
              attack_kwargs: Mapping | None, seed: int = 0, eval_fn: Callable | None = None,
              select_fn: Callable | None = None, optimizer: str = "adam", momentum: float = 0.9,
              weight_decay: float = 0.0, augment: Callable | None = None, desc: str = "GAT detectors",
              progress: bool = True) -> list[dict[str, float]]:
    """Train the K detectors of ``bank`` together with GAT's objective (Eq. 5), through the cache.

    Every step draws ``m`` positives and ``m`` negatives per detector (:func:`advdetect.gat.detector_batches`),
    perturbs the negatives with ``attack_kwargs`` and takes one Adam step for all detectors; an epoch has as
    many steps as it takes to draw about every training image once as a positive. ``eval_fn(bank)``, if
    given, adds numbers (e.g. AUCs) to each epoch's history. ``select_fn(bank)``, if given, returns every
    detector's validation score (shape ``(K,)``, higher is better) after each epoch; each detector ends with its
    weights of its best epoch (GAT: the validation AUC under a 200-step attack), recorded in the history as
    ``best epoch k``. ``optimizer`` is ``"adam"`` (MNIST) or ``"sgd"`` (CIFAR-10: momentum 0.9, weight decay
    2e-4); ``augment(x, generator)`` transforms positives and negatives before the attack (CIFAR-10: random crop
    and flip).
    """
    from .gat import detector_batches, gat_step

    device = device_of(bank)
    opt = make_optimizer(bank.parameters(), optimizer, lr, momentum=momentum, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(seed)
    steps = max(1, len(y) // (bank.k * m))
    extra: dict[str, torch.Tensor] = {}
    if select_fn is not None:
        extra = {"best_score": torch.full((bank.k,), float("-inf"), device=device),
                 "best_epoch": torch.zeros(bank.k, device=device)}
        extra.update({f"best_{n}": p.detach().clone() for n, p in bank.stacked.items()})

    def epoch_fn(epoch: int):
        losses = []
        for _ in range(steps):
            pos, neg = detector_batches(y, m, bank.k, gen)
            xp, xn = x[pos], x[neg]
            if augment is not None:
                xp = augment(xp.flatten(0, 1), gen).view_as(xp)
                xn = augment(xn.flatten(0, 1), gen).view_as(xn)
            losses.append(gat_step(bank, opt, xp.to(device), xn.to(device), attack_kwargs))
        stats = {"loss": sum(losses) / len(losses)}
        if eval_fn is not None:
            stats.update(eval_fn(bank))
        if select_fn is not None:
            score = torch.as_tensor(select_fn(bank), dtype=torch.float32, device=device)
            better = score > extra["best_score"]
            extra["best_score"].copy_(torch.where(better, score, extra["best_score"]))
            extra["best_epoch"].copy_(torch.where(better, torch.full_like(score, epoch + 1), extra["best_epoch"]))
            with torch.no_grad():
                for n, p in bank.stacked.items():
                    keep = better.view(-1, *([1] * (p.ndim - 1)))
                    extra[f"best_{n}"].copy_(torch.where(keep, p, extra[f"best_{n}"]))
            stats.update({f"val score {k}": float(v) for k, v in enumerate(score)})
        return stats

    history = fit(entry, bank, opt, epoch_fn, epochs, desc=desc, progress=progress, extra=extra)
    if select_fn is not None:
        with torch.no_grad():
            for n, p in bank.stacked.items():
                p.copy_(extra[f"best_{n}"])
        history = [dict(h) for h in history]
        history[-1].update({f"best epoch {k}": int(e) for k, e in enumerate(extra["best_epoch"].tolist())})
    return history
