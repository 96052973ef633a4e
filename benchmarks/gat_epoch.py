"""One GAT epoch (all ten detectors, batched) against one Madry adversarial-training epoch, measured in one run.

Both train the Madry MNIST CNN (``--width``) on the same images with the same PGD (``--steps`` Adam steps within
L-inf 0.3); a GAT epoch perturbs about as many negatives as there are training images, an adversarial-training
epoch every training image once. GAT Appendix E estimates 2.7 for its implementation; the aim here is <= 1.2.

    python benchmarks/gat_epoch.py [--n 1000] [--steps 10] [--width 1.0] [--device cpu]
"""

import argparse

import advdetect as ad

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--n", type=int, default=1000, help="training images")
parser.add_argument("--steps", type=int, default=10, help="PGD steps of both trainings")
parser.add_argument("--width", type=float, default=1.0)
parser.add_argument("--device", default=str(ad.runtime.best_device()))
args = parser.parse_args()
ad.runtime.configure_threads()
ds = ad.data.load("mnist5k")
x, y = ad.data.subset(ds.x_train, ds.y_train, args.n, seed=0)
r = ad.bench.gat_vs_adversarial_epoch(x, y, steps=args.steps, width=args.width, device=args.device)
print(f"device: {ad.runtime.hardware(args.device)}")
print(f"{args.n} training images, {args.steps} PGD steps, Madry CNN width {args.width}")
print(f"GAT epoch (10 detectors, batched): {r['GAT epoch s']:.1f} s")
print(f"adversarial-training epoch:        {r['adversarial-training epoch s']:.1f} s")
print(f"ratio GAT / adversarial training: {r['GAT / adversarial training']:.2f}  (aim <= 1.2; GAT App. E: 2.7)")
