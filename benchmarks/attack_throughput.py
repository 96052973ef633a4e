"""Attack-engine throughput against a plain PGD loop, measured in one run.

Both attack the same Madry MNIST CNN on the same images with L-inf PGD (sign steps, random start) and report
sample-steps per second; the ratio plain / engine is the engine's overhead (aim: <= 1.1). The engine does more
per step - it keeps every sample's best iterate and success flag - so the ratio measures what that costs.

    python benchmarks/attack_throughput.py [--batch 256] [--steps 40] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import advdetect as ad


def plain_pgd(model, x, y, eps, alpha, steps):
    """The textbook 10-line PGD loop (cross-entropy, sign steps, random start)."""
    delta = torch.empty_like(x).uniform_(-eps, eps)
    x_adv = (x + delta).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = torch.nn.functional.cross_entropy(model(x_adv), y)
        (g,) = torch.autograd.grad(loss, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    return x_adv


def engine_pgd(model, x, y, eps, alpha, steps):
    return ad.attacks.attack(ad.losses.untargeted_cross_entropy(model), x, y, norm="linf", eps=eps, steps=steps,
                             step_size=alpha, rule="sign", random_start=True).x_adv


def timed(fn, *args, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn(*args)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=str(ad.runtime.best_device()))
    args = parser.parse_args()
    ad.runtime.configure_threads()
    device = torch.device(args.device)
    torch.manual_seed(0)
    ds = ad.data.load("mnist5k")
    x, y = ds.x_test[: args.batch].to(device), ds.y_test[: args.batch].to(device)
    model = ad.models.MadryCNN(10).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    eps, alpha = 0.3, 0.01
    # warm up both, then alternate so that drifts in machine load hit both alike
    plain_pgd(model, x, y, eps, alpha, 2)
    engine_pgd(model, x, y, eps, alpha, 2)
    t_plain, t_engine = [], []
    for _ in range(args.repeats):
        t_plain.append(timed(plain_pgd, model, x, y, eps, alpha, args.steps, device=device))
        t_engine.append(timed(engine_pgd, model, x, y, eps, alpha, args.steps, device=device))
    work = args.batch * args.steps
    tp, te = statistics.median(t_plain), statistics.median(t_engine)
    print(f"device: {ad.runtime.hardware(device)}")
    print(f"Madry CNN, batch {args.batch}, {args.steps} L-inf PGD steps, median of {args.repeats} runs")
    print(f"plain loop : {work / tp:10.0f} sample-steps/s  ({tp:.3f} s)")
    print(f"engine     : {work / te:10.0f} sample-steps/s  ({te:.3f} s)")
    print(f"ratio engine time / plain time: {te / tp:.3f}  (aim <= 1.1)")


if __name__ == "__main__":
    main()
