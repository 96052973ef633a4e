"""The batched K-detector model against a Python loop over K separate models, measured in one run.

Prints, for the Madry MNIST CNN with one logit:
* a training step (forward + backward of every detector on its own batch, one Adam step): loop / batched;
* inference of all K detectors on one batch: loop / batched;
* the generative classifier (K one-logit detectors, batched) against the softmax classifier (one network with
  K logits) on the same batch: generative / softmax.
Aims (issue 3): batched >= 1.3x faster than the loop on a CPU, >= 3x on a GPU.

    python benchmarks/batched_detectors.py [--k 10] [--batch 64] [--width 1.0] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import advdetect as ad
from advdetect.ensemble import DetectorBank


def _time(fn, device, repeats):
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64, help="inputs per detector per step")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=str(ad.runtime.best_device()))
    args = parser.parse_args()
    ad.runtime.configure_threads()
    device = torch.device(args.device)
    torch.manual_seed(0)
    models = [ad.models.MadryCNN(1, width=args.width).to(device) for _ in range(args.k)]
    bank = DetectorBank(models).to(device)
    softmax = ad.models.MadryCNN(args.k, width=args.width).to(device)
    xs = torch.rand(args.k, args.batch, 1, 28, 28, device=device)
    target = (torch.rand(args.k, args.batch, device=device) > 0.5).float()
    opt_loop = [torch.optim.Adam(m.parameters(), 1e-4) for m in models]
    opt_bank = torch.optim.Adam(bank.parameters(), 1e-4)
    bce = torch.nn.functional.binary_cross_entropy_with_logits

    def train_loop():
        for m, o, x, t in zip(models, opt_loop, xs, target):
            loss = bce(m(x)[:, 0], t)
            o.zero_grad()
            loss.backward()
            o.step()

    def train_bank():
        loss = bce(bank.each(xs), target)
        opt_bank.zero_grad()
        loss.backward()
        opt_bank.step()

    x1 = xs[0]

    @torch.no_grad()
    def infer_loop():
        return torch.cat([m(x1) for m in models], 1)

    @torch.no_grad()
    def infer_bank():
        return bank(x1)

    @torch.no_grad()
    def infer_softmax():
        return softmax(x1)

    t_tl, t_tb = _time(train_loop, device, args.repeats), _time(train_bank, device, args.repeats)
    t_il, t_ib = _time(infer_loop, device, args.repeats), _time(infer_bank, device, args.repeats)
    t_is = _time(infer_softmax, device, args.repeats)
    print(f"device: {ad.runtime.hardware(device)}")
    print(f"K = {args.k} Madry CNN detectors (width {args.width}), {args.batch} inputs per detector, "
          f"median of {args.repeats}")
    print(f"training step : loop {t_tl * 1e3:8.1f} ms   batched {t_tb * 1e3:8.1f} ms   speed-up {t_tl / t_tb:.2f}x")
    print(f"inference     : loop {t_il * 1e3:8.1f} ms   batched {t_ib * 1e3:8.1f} ms   speed-up {t_il / t_ib:.2f}x")
    print(f"generative vs softmax classifier inference: {t_ib * 1e3:.1f} ms vs {t_is * 1e3:.1f} ms "
          f"(ratio {t_ib / t_is:.2f}; GAT App. E reports about 10 on its GPU)")


if __name__ == "__main__":
    main()
