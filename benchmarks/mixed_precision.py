"""Adversarial training in bfloat16 autocast against float32, measured in one run (the ratio is what matters).

Times one epoch of the book's Madry adversarial training (``advdetect.training.train_classifier``: 5-step L-inf
PGD with sign steps from a random start, then the update; batch 50) on the first ``--images`` MNIST training
images, alternating the two precisions ``--repeats`` times from the same initial weights, and prints the median
time of each and their ratio. Whether bfloat16 pays depends on the CPU (native bfloat16 instructions, such as
AVX512-BF16 or AMX, make convolutions and matrix products faster; without them autocast can be slower).

    python benchmarks/mixed_precision.py [--images 2000] [--repeats 3] [--width 0.5] [--threads N]
"""

import argparse
import copy
import statistics
import time

import torch

import advdetect as ad

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--images", type=int, default=2000)
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--width", type=float, default=0.5)
parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the runtime's choice)")
args = parser.parse_args()
ad.runtime.configure_threads()
if args.threads:
    torch.set_num_threads(args.threads)
ds = ad.data.load("mnist")
x, y = ds.x_train[: args.images], ds.y_train[: args.images]
torch.manual_seed(0)
start = ad.models.MadryCNN(10, width=args.width)
attack = {"norm": "linf", "eps": 0.3, "steps": 5, "step_size": 0.15, "rule": "sign", "random_start": True}
seconds: dict[str, list[float]] = {p: [] for p in ad.training.PRECISIONS}
for _ in range(args.repeats):
    for precision in ad.training.PRECISIONS:
        model = copy.deepcopy(start)
        began = time.perf_counter()
        ad.training.train_classifier(None, model, x, y, epochs=1, lr=1e-3, batch_size=50, attack_kwargs=attack,
                                     precision=precision, progress=False)
        seconds[precision].append(time.perf_counter() - began)
median = {p: statistics.median(s) for p, s in seconds.items()}
print(f"Madry CNN (width {args.width}), {args.images} images, batch 50, 5-step PGD; {torch.get_num_threads()} "
      f"thread(s); median of {args.repeats}")
for p, s in median.items():
    print(f"{p:5s}: {s:7.2f} s per epoch of {args.images} images  ({args.images / s:6.0f} images/s)")
print(f"ratio fp32 time / bf16 time: {median['fp32'] / median['bf16']:.2f}")
