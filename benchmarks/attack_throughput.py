"""Attack-engine throughput against a plain 10-line PGD loop, measured in one run (aim: ratio <= 1.1).

Both attack the same Madry MNIST CNN on the same images with L-inf PGD (sign steps, random start); the engine
also keeps every sample's best iterate and success flag, so the ratio measures what that costs.

    python benchmarks/attack_throughput.py [--batch 256] [--steps 40] [--repeats 5] [--width 1.0] [--device cpu]
"""

import argparse

import torch

import advdetect as ad

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--batch", type=int, default=256)
parser.add_argument("--steps", type=int, default=40)
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--width", type=float, default=1.0)
parser.add_argument("--device", default=str(ad.runtime.best_device()))
args = parser.parse_args()
ad.runtime.configure_threads()
device = torch.device(args.device)
torch.manual_seed(0)
ds = ad.data.load("mnist5k")
x, y = ds.x_test[: args.batch].to(device), ds.y_test[: args.batch].to(device)
model = ad.models.MadryCNN(10, width=args.width).to(device).eval().requires_grad_(False)
r = ad.bench.attack_throughput(model, x, y, steps=args.steps, repeats=args.repeats)
print(f"device: {ad.runtime.hardware(device)}")
print(f"Madry CNN (width {args.width}), batch {args.batch}, {args.steps} L-inf PGD steps, median of {args.repeats}")
print(f"plain loop : {r['plain sample-steps/s']:10.0f} sample-steps/s  ({r['plain s']:.3f} s)")
print(f"engine     : {r['engine sample-steps/s']:10.0f} sample-steps/s  ({r['engine s']:.3f} s)")
print(f"ratio engine time / plain time: {r['engine / plain']:.3f}  (aim <= 1.1)")
