"""Two chapters at once with one thread each against one chapter with every thread, measured in one run.

The work is the cpu profile's commonest: batches of 5-step PGD adversarial training of the Madry CNN at width
0.5 (:func:`advdetect.bench.adversarial_training_work`). "one at a time" runs 2B batches in one process with
all the cores' threads; "two at once" runs B batches in each of two processes at the same time, each with
cores / 2 threads (what ``python -m advdetect.book execute --jobs 2`` does). The two are alternated
``--repeats`` times; the script prints the median wall-clock times and the speed-up of running two at once.

    python benchmarks/parallel_chapters.py [--batches 100] [--repeats 3]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import advdetect as ad

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--batches", type=int, default=100, help="batches of one of the two concurrent processes")
parser.add_argument("--repeats", type=int, default=3)
parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
args = parser.parse_args()

if args.worker:
    ad.runtime.configure_threads()
    ad.bench.adversarial_training_work(1)  # first-call costs out of the timing
    start = time.time()
    ad.bench.adversarial_training_work(args.worker)
    print(start, time.time())
    sys.exit(0)

cores = ad.runtime.available_cores()


def run(processes: int, batches: int) -> float:
    """Wall-clock seconds from the first worker's start of work to the last one's end (imports excluded)."""
    env = dict(os.environ, **{ad.runtime.THREADS_VAR: str(max(1, cores // processes)), "OMP_WAIT_POLICY": "PASSIVE"})
    procs = [subprocess.Popen([sys.executable, __file__, "--worker", str(batches)], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(processes)]
    spans = []
    for p in procs:
        out, _ = p.communicate()
        if p.returncode:
            raise SystemExit("a worker failed")
        spans.append([float(v) for v in out.split()])
    return max(end for _, end in spans) - min(start for start, _ in spans)


one, two = [], []
for _ in range(args.repeats):
    one.append(run(1, 2 * args.batches))
    two.append(run(2, args.batches))
t1, t2 = statistics.median(one), statistics.median(two)
print(f"{cores} cores; {2 * args.batches} batches of 50 images, 5-step PGD training of the Madry CNN (width 0.5)")
print(f"one at a time, {cores} threads:                {t1:6.1f} s (median of {args.repeats})")
print(f"two at once, {max(1, cores // 2)} thread(s) each:           {t2:6.1f} s")
print(f"speed-up of two at once: {t1 / t2:.2f}")
