"""Gradient attacks in bfloat16 autocast against float32, measured in one run: time and ASR-1 of each.

The work is the head-to-head chapter's deepest runs within L-inf 0.3, untargeted: the composite loss under APGD's
rule (from 2 eps) and the defence's paper objective under fixed sign steps of 0.01 from the image, ``--steps``
steps each, on the first ``--n`` attacked images, aimed at the chapter's operating point and judged at 1% false
positives. The defences (``--defences``) are loaded from the artefact cache as the chapter builds them at
``--profile`` (train them first: ``make book`` or the chapters before 05). Nothing is cached: every run is
computed. A bfloat16 run judges success in float32 (``advdetect.objectives.objective``), so the two columns of
ASR-1 differ only by what the rounded gradients find. Whether bfloat16 pays depends on the CPU (native bfloat16
instructions, such as AVX512-BF16 or AMX).

    python benchmarks/attack_precision.py [--defences "GAT generative,GAT integrated,Madry,ARCLU"] [--n 100]
                                          [--steps 50] [--profile cpu] [--threads 1]
"""

import time

import torch
from _common import head_to_head

import advdetect as ad


def own_arguments(parser):
    parser.add_argument("--n", type=int, default=100, help="attacked images")
    parser.add_argument("--steps", type=int, default=50)


args, h = head_to_head(__doc__, "GAT generative,GAT integrated,Madry,ARCLU", own_arguments)
s, chosen, device = h["settings"], h["defences"], h["device"]
x, y, x_heldout = h["x"], h["y"], h["x_heldout"]
aim = s["ATTACK_PS"][0]

print(f"device: {ad.runtime.hardware(device)}; {torch.get_num_threads()} thread(s); first {args.n} of "
      f"{len(x)} images, {args.steps} steps, L-inf 0.3, untargeted ({args.profile} profile)")
print(f"{'defence':16s} {'run':34s} {'fp32 s':>7s} {'bf16 s':>7s} {'ratio':>6s} {'ASR-1 fp32':>10s} {'bf16':>6s}")
for name, defence in chosen.items():
    arena = ad.evaluation.Arena(defence, x, y, x_heldout, tuple(s["FPRS"]), s["SEED"], (aim,)).subset(args.n)
    others = [arena.criterion(q) for q in arena.ps if q != aim]
    xs, ys = arena.x.to(device), arena.y.to(device)
    for loss, rule, size in (("composite", "apgd", 0.6), (defence.paper_objective, "steepest", 0.01)):
        seconds, asr = {}, {}
        for precision in ("fp32", "bf16"):
            fn = ad.objectives.objective(defence, loss, arena.criterion(aim), also=others, precision=precision)
            start = time.perf_counter()
            res = ad.attacks.attack(fn, xs, ys, norm="linf", eps=0.3, steps=args.steps, step_size=size, rule=rule,
                                    early_stop=True, generator=torch.Generator().manual_seed(s["SEED"]))
            seconds[precision] = time.perf_counter() - start
            found = ad.evaluation.best_per_p(arena, {aim: [res.x_adv.cpu(), *res.also.cpu()]})
            asr[precision] = arena.evaluate(found)["ASR-1"]
        label = f"{loss}, {rule} {size:g}"
        print(f"{name:16s} {label:34s} {seconds['fp32']:7.1f} {seconds['bf16']:7.1f} "
              f"{seconds['bf16'] / seconds['fp32']:6.2f} {asr['fp32']:10.3f} {asr['bf16']:6.3f}")
