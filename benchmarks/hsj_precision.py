"""HopSkipJump on a defence that remembers its float32 decisions against the same defence in float64, measured in
one run: time and ASR-1 of each.

foolbox's HopSkipJump walks to within rounding of the decision boundary and asks again about the points it
found; a CPU's float32 rounding changes with the batch, so the head-to-head chapter either runs the defence in
float64 (a copy of it) or lets it remember its decisions in float32 (the same input, the same answer:
``advdetect.blackbox.DecisionModel(remember=True)``). This prints what each costs on the first ``--n`` attacked
images of the chapter, with its settings at ``--profile`` (steps, initial gradient evaluations), on the
defences ``--defences`` loaded from the artefact cache as the chapter builds them (train them first: ``make
book`` or the chapters before 05). Nothing is cached. The two runs draw different random directions from the
same seed through different arithmetic, so their ASR-1 may differ by an image or two.

    python benchmarks/hsj_precision.py [--defences "GAT generative,GAT integrated,Madry"] [--n 12]
                                       [--norm linf] [--profile cpu] [--threads 1]
"""

import time

import torch
from _common import head_to_head

import advdetect as ad


def own_arguments(parser):
    parser.add_argument("--n", type=int, default=12, help="attacked images")
    parser.add_argument("--norm", default="linf", choices=["linf", "l2"])


args, h = head_to_head(__doc__, "GAT generative,GAT integrated,Madry", own_arguments)
s, chosen, device = h["settings"], h["defences"], h["device"]
x, y, x_heldout = h["x"], h["y"], h["x_heldout"]
eps = s["BB_LINF"] if args.norm == "linf" else s["BB_L2"]

print(f"device: {ad.runtime.hardware(device)}; {torch.get_num_threads()} thread(s); first {args.n} of {len(x)} "
      f"images, HopSkipJump {args.norm} {eps:g}, {s['HSJ_STEPS']} iterations, {s['HSJ_EVALS']} initial gradient "
      f"evaluations ({args.profile} profile)")
print(f"{'defence':16s} {'float64 s':>9s} {'float32 s':>9s} {'ratio':>6s} {'ASR-1 float64':>13s} {'float32':>8s}")
for name, defence in chosen.items():
    arena = ad.evaluation.Arena(defence, x, y, x_heldout, tuple(s["FPRS"]), s["SEED"],
                                decided_heldout=ad.suite.heldout_decisions(h["cache"], defence, x_heldout)).subset(args.n)
    seconds, asr = {}, {}
    for precision in ("float64", "float32"):
        start = time.perf_counter()
        x_adv = ad.blackbox.hsj(arena, norm=args.norm, eps=eps, steps=s["HSJ_STEPS"], initial_evals=s["HSJ_EVALS"],
                                precision=precision)
        seconds[precision] = time.perf_counter() - start
        asr[precision] = arena.evaluate(x_adv)["ASR-1"]
    print(f"{name:16s} {seconds['float64']:9.1f} {seconds['float32']:9.1f} "
          f"{seconds['float32'] / seconds['float64']:6.2f} {asr['float64']:13.3f} {asr['float32']:8.3f}")
