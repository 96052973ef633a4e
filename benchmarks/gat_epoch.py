"""One GAT epoch (all ten detectors, batched) against one Madry adversarial-training epoch, measured in one run.

Both train the Madry MNIST CNN (``--width``) on the same images with the same PGD (``--steps`` Adam steps within
L-inf 0.3); an epoch of GAT perturbs as many negatives as there are training images (each image is a positive
once), an epoch of adversarial training perturbs every training image once. GAT Appendix E estimates 2.7 for
its implementation; the aim here is <= 1.2.

    python benchmarks/gat_epoch.py [--n 1000] [--steps 10] [--width 1.0] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch

import advdetect as ad
from advdetect.cache import ArtefactCache
from advdetect.ensemble import DetectorBank


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="training images")
    parser.add_argument("--steps", type=int, default=10, help="PGD steps of both trainings")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--m", type=int, default=32, help="positives per detector per GAT step")
    parser.add_argument("--batch", type=int, default=50, help="adversarial-training batch size")
    parser.add_argument("--device", default=str(ad.runtime.best_device()))
    args = parser.parse_args()
    ad.runtime.configure_threads()
    device = torch.device(args.device)
    ds = ad.data.load("mnist5k")
    x, y = ad.data.subset(ds.x_train, ds.y_train, args.n, seed=0)
    attack = dict(norm="linf", eps=0.3, steps=args.steps, step_size=0.01, rule="adam", random_start=True)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        cache = ArtefactCache(tmp)
        torch.manual_seed(0)
        bank = DetectorBank([ad.models.MadryCNN(1, width=args.width) for _ in range(10)]).to(device)
        start = time.perf_counter()
        ad.training.train_gat(cache.entry("gat", {}), bank, x, y, epochs=1, m=args.m, lr=5e-4, attack_kwargs=attack,
                              progress=False)
        t_gat = time.perf_counter() - start
        model = ad.models.MadryCNN(10, width=args.width).to(device)
        start = time.perf_counter()
        ad.training.train_classifier(cache.entry("madry", {}), model, x, y, epochs=1, lr=1e-4,
                                     batch_size=args.batch, attack_kwargs=attack, progress=False)
        t_madry = time.perf_counter() - start
    print(f"device: {ad.runtime.hardware(device)}")
    print(f"{args.n} training images, {args.steps} PGD steps, Madry CNN width {args.width}")
    print(f"GAT epoch (10 detectors, batched): {t_gat:.1f} s")
    print(f"adversarial-training epoch:        {t_madry:.1f} s")
    print(f"ratio GAT / adversarial training: {t_gat / t_madry:.2f}  (aim <= 1.2; GAT App. E estimate: 2.7)")


if __name__ == "__main__":
    main()
