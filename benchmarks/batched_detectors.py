"""The batched K-detector model against a Python loop over K separate models, measured in one run.

Prints, for the Madry MNIST CNN with one logit: a training step (every detector on its own batch, one Adam
step), inference of all K detectors on one batch, the generative classifier (the bank) against the softmax
classifier with K logits, and an attack step (forward and input gradient) through all K detectors against one
detector per input (what GAT's integrated classifier consults). Aims (issue 3): batched >= 1.3x faster than the loop on a CPU, >= 3x on a GPU.

    python benchmarks/batched_detectors.py [--k 10] [--batch 64] [--width 1.0] [--repeats 5] [--device cpu]
"""

import argparse

import advdetect as ad

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--k", type=int, default=10)
parser.add_argument("--batch", type=int, default=64, help="inputs per detector per step")
parser.add_argument("--width", type=float, default=1.0)
parser.add_argument("--repeats", type=int, default=5)
parser.add_argument("--device", default=str(ad.runtime.best_device()))
args = parser.parse_args()
ad.runtime.configure_threads()
r = ad.bench.batched_vs_loop(k=args.k, batch=args.batch, width=args.width, device=args.device, repeats=args.repeats)
print(f"device: {ad.runtime.hardware(args.device)}")
print(f"K = {args.k} Madry CNN detectors (width {args.width}), {args.batch} inputs per detector, "
      f"median of {args.repeats}")
print(f"training step : loop {r['train loop s'] * 1e3:8.1f} ms   batched {r['train batched s'] * 1e3:8.1f} ms   "
      f"speed-up {r['train speed-up']:.2f}x")
print(f"inference     : loop {r['infer loop s'] * 1e3:8.1f} ms   batched {r['infer batched s'] * 1e3:8.1f} ms   "
      f"speed-up {r['infer speed-up']:.2f}x")
print(f"attack step   : all {args.k} detectors {r['attack all s'] * 1e3:8.1f} ms   the one each input needs "
      f"{r['attack selected s'] * 1e3:8.1f} ms   ratio {r['attack all / selected']:.2f}x (GAT's integrated classifier)")
print(f"generative vs softmax classifier inference: {r['infer batched s'] * 1e3:.1f} ms vs "
      f"{r['softmax s'] * 1e3:.1f} ms (ratio {r['generative / softmax']:.2f}; GAT App. E: about 10 on its GPU)")
