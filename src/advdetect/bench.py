"""Speed measurements shared by the scripts in ``benchmarks/`` and the chapters' cost sections.

Every function measures its competitors in one run, alternating them so that drifts in machine load hit both
alike, and returns median wall-clock times and their ratio. Nothing here is a test: the numbers are printed by
the scripts and shown by the chapters, never asserted.
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch
import torch.nn.functional as F

from . import attacks, gat, models, training
from .defences import ClassifierDefence
from .ensemble import DetectorBank
from .objectives import objective


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def compare(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int = 5) -> dict[str, float]:
    """Median seconds of each function over ``repeats`` alternating runs, after one warm-up run each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def plain_pgd(model, x, y, eps: float, alpha: float, steps: int) -> torch.Tensor:
    """The textbook 10-line PGD loop (cross-entropy, sign steps, random start): the engine's yardstick."""
    x_adv = (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y)
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def attack_throughput(model, x, y, *, steps: int = 40, eps: float = 0.3, alpha: float = 0.01, repeats: int = 5):
    """The engine against :func:`plain_pgd` on the same model and images: sample-steps per second and ratio."""
    device = x.device
    t = compare({
        "plain": lambda: plain_pgd(model, x, y, eps, alpha, steps),
        "engine": lambda: attacks.attack(objective(ClassifierDefence("bench", model), "cross-entropy"), x, y, norm="linf", eps=eps,
                                         steps=steps, step_size=alpha, rule="sign", random_start=True),
    }, device, repeats)
    work = len(x) * steps
    return {"plain s": t["plain"], "engine s": t["engine"], "plain sample-steps/s": work / t["plain"],
            "engine sample-steps/s": work / t["engine"], "engine / plain": t["engine"] / t["plain"]}


def batched_vs_loop(*, k: int = 10, batch: int = 64, width: float = 1.0, device: torch.device | str = "cpu",
                    repeats: int = 5, seed: int = 0) -> dict[str, float]:
    """K one-logit Madry CNNs as one :class:`DetectorBank` against a loop over K modules: a training step
    (forward, backward, Adam) on each detector's own batch, inference of all K on one batch, the generative
    classifier (the bank) against a softmax classifier with K logits, and an attack step (forward and input
    gradient on one batch) of every detector (the generative classifier's) against the one detector per input
    that the integrated classifier consults (:meth:`DetectorBank.selected`)."""
    device = torch.device(device)
    torch.manual_seed(seed)
    nets = [models.MadryCNN(1, width=width).to(device) for _ in range(k)]
    bank = DetectorBank(nets).to(device)
    softmax = models.MadryCNN(k, width=width).to(device)
    xs = torch.rand(k, batch, 1, 28, 28, device=device)
    target = (torch.rand(k, batch, device=device) > 0.5).float()
    opt_loop = [torch.optim.Adam(m.parameters(), 1e-4) for m in nets]
    opt_bank = torch.optim.Adam(bank.parameters(), 1e-4)

    def train_loop():
        for m, o, x, t in zip(nets, opt_loop, xs, target):
            loss = F.binary_cross_entropy_with_logits(m(x)[:, 0], t)
            o.zero_grad()
            loss.backward()
            o.step()

    def train_bank():
        loss = F.binary_cross_entropy_with_logits(bank.each(xs), target)
        opt_bank.zero_grad()
        loss.backward()
        opt_bank.step()

    train = compare({"loop": train_loop, "batched": train_bank}, device, repeats)
    with torch.no_grad():
        infer = compare({"loop": lambda: torch.cat([m(xs[0]) for m in nets], 1), "batched": lambda: bank(xs[0]),
                         "softmax": lambda: softmax(xs[0])}, device, repeats)
    which = torch.arange(batch, device=device) % k

    def gradient(f):
        def step():
            x = xs[0].clone().requires_grad_(True)
            torch.autograd.grad(f(x).sum(), x)
        return step

    attack = compare({"loop": gradient(lambda x: torch.cat([m(x) for m in nets], 1)), "batched": gradient(bank),
                      "selected": gradient(lambda x: bank.selected(x, which))}, device, repeats)
    return {"train loop s": train["loop"], "train batched s": train["batched"],
            "train speed-up": train["loop"] / train["batched"], "infer loop s": infer["loop"],
            "infer batched s": infer["batched"], "infer speed-up": infer["loop"] / infer["batched"],
            "softmax s": infer["softmax"], "generative / softmax": infer["batched"] / infer["softmax"],
            "attack all s": attack["batched"], "attack selected s": attack["selected"],
            "attack all / selected": attack["batched"] / attack["selected"]}


def gat_vs_adversarial_epoch(x: torch.Tensor, y: torch.Tensor, *, steps: int = 10, width: float = 1.0, m: int = 32,
                             batch_size: int = 50, device: torch.device | str = "cpu", seed: int = 0):
    """One GAT epoch of ten batched detectors against one Madry adversarial-training epoch of the same network at
    the same PGD (``steps`` Adam steps within L-inf 0.3), on the images ``x``: seconds and ratio. ``m`` shrinks
    for small ``x`` so that a GAT epoch has at least three steps; each training first runs once untimed on a
    small slice (warm-up)."""
    device = torch.device(device)
    attack = dict(norm="linf", eps=0.3, steps=steps, step_size=0.01, rule="adam", random_start=True)
    m = max(2, min(m, len(y) // 30))
    seconds = {}
    for timed in (False, True):
        xs, ys = (x, y) if timed else (x[: 20 * m], y[: 20 * m])
        torch.manual_seed(seed)
        bank = DetectorBank([models.MadryCNN(1, width=width) for _ in range(10)]).to(device)
        model = models.MadryCNN(10, width=width).to(device)
        for name, run in (
            ("gat", lambda: gat.train_gat(None, bank, xs, ys, epochs=1, m=m,
                                               lr=5e-4, attack_kwargs=attack, seed=seed, progress=False)),
            ("adv", lambda: training.train_classifier(None, model, xs, ys,
                                                      epochs=1, lr=1e-4, batch_size=batch_size, seed=seed,
                                                      attack_kwargs=attack, progress=False))):
            _sync(device)
            start = time.perf_counter()
            run()
            _sync(device)
            seconds[name] = time.perf_counter() - start
    return {"GAT epoch s": seconds["gat"], "adversarial-training epoch s": seconds["adv"],
            "GAT / adversarial training": seconds["gat"] / seconds["adv"]}


def adversarial_training_work(batches: int, *, batch: int = 50, width: float = 0.5, steps: int = 5,
                              seed: int = 0) -> float:
    """``batches`` batches of the cpu profile's Madry training (:func:`advdetect.training.train_classifier` with
    PGD-``steps`` at L-inf 0.3, sign steps of 2.5 eps / steps, on random MNIST-shaped images) with the current
    thread setting: the book's commonest work, for measuring how chapters share cores. Returns its wall-clock
    seconds."""
    generator = torch.Generator().manual_seed(seed)
    model = models.MadryCNN(10, width=width)
    x = torch.rand(batches * batch, 1, 28, 28, generator=generator)
    y = torch.randint(0, 10, (batches * batch,), generator=generator)
    start = time.perf_counter()
    training.train_classifier(None, model, x, y, epochs=1, lr=1e-3, batch_size=batch, seed=seed, progress=False,
                              attack_kwargs=dict(norm="linf", eps=0.3, steps=steps, step_size=2.5 * 0.3 / steps))
    return time.perf_counter() - start
