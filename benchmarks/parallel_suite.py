"""The attack suite in two processes at once against one process with every thread, measured in one run.

The work is the head-to-head chapter's: its L-inf 0.3 rows (targeted and untargeted, APGD and fixed steps, the
paper objective and the composite loss, ``DEEP_STEPS`` steps) on the defences named by ``--defences``, loaded
from the artefact cache as the chapter builds them at ``--profile`` (train them first: ``make book`` or the
chapters before 05), on the first ``--n`` attacked images. Each timing starts from an empty temporary cache, so
every attack is computed; "one process" runs ``run_suite(workers=1)`` with all threads, "two processes" runs
``run_suite(workers=2)`` (each worker with half the threads). Prints both wall-clock times, the speed-up and
whether the two runs found the same ASR-1 on every defence.

    python benchmarks/parallel_suite.py [--defences ARCLU,Madry,L-Ben,TRADES] [--n 200] [--profile cpu]
"""

import argparse
import tempfile
import time

import advdetect as ad

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--defences", default="ARCLU,Madry,L-Ben,TRADES")
    parser.add_argument("--n", type=int, default=200, help="attacked images")
    parser.add_argument("--profile", default="cpu")
    args = parser.parse_args()

    threads = ad.runtime.configure_threads()
    try:
        h = ad.chapters.head_to_head_inputs(args.profile, args.defences, args.n)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    s, chosen, device = h["settings"], h["defences"], h["device"]
    x, y, x_heldout = h["x"], h["y"], h["x_heldout"]
    names = list(chosen)
    specs = [spec for spec in ad.suite.attack_specs(s) if spec["name"] in ("PGD Linf 0.3, T", "PGD Linf 0.3, U")]

    seconds, asr = {}, {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = ad.suite.run_suite(ad.cache.ArtefactCache(tmp), chosen, x, y, x_heldout, specs, surrogate_x={},
                                        ps=s["FPRS"], attack_ps=s["ATTACK_PS"], seed=s["SEED"], workers=workers,
                                        progress=False)
            seconds[workers] = time.perf_counter() - start
            asr[workers] = {key: r["ASR-1"] for key, r in result.results.items()}
    print(f"device: {ad.runtime.hardware(device)}; {threads} threads")
    print(f"{', '.join(names)}: {len(specs)} rows x {len(x)} images, {s['DEEP_STEPS']} steps ({args.profile} profile)")
    print(f"one process, {threads} threads:        {seconds[1]:7.1f} s")
    print(f"two processes, {max(1, threads // 2)} thread(s) each:  {seconds[2]:7.1f} s")
    print(f"speed-up of two processes: {seconds[1] / seconds[2]:.2f}; same ASR-1 everywhere: {asr[1] == asr[2]}")


if __name__ == "__main__":   # the workers are spawned processes, which import this file
    main()
