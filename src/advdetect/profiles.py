"""Run profiles: one table of every chapter's parameters at the three scales of the book.

``smoke``  CI: each notebook in a minute on two cores, on tiny subsets - it checks that the code runs.
``cpu``    the default: the whole book on a 2-core CPU on full MNIST, with training recipes that reach the papers'
           model strength there (fewer, larger attack steps, an eps warm-up, detectors started from a robust
           classifier) and shorter evaluation attacks where the papers' are out of reach.
``paper``  the papers' own settings, meant for a GPU with the full datasets.

The profile is chosen by the environment variable ``ADVDETECT_PROFILE`` (default ``cpu``). Every parameter is
spelled once, here. A notebook's first cell (tagged ``parameters``) names only the profile::

    PROFILE = ad.profiles.active()
    # N_TEST = 200      (any setting of the chapter may be set here, or by papermill: -p N_TEST 200)

and the next cell calls :func:`settle`, which takes each setting from the profile unless the notebook's
namespace sets it (a papermill parameter or a line of the reader's), checks its type against the profile's
value, puts every setting into the namespace and returns the effective settings.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, MutableMapping

import pandas as pd

from .errors import ProfileError

PROFILES: tuple[str, ...] = ("smoke", "cpu", "paper")
ENV_VAR = "ADVDETECT_PROFILE"
DEFAULT_PROFILE = "cpu"


def _same(value: Any) -> dict[str, Any]:
    return {p: value for p in PROFILES}


def _by(smoke: Any, cpu: Any, paper: Any) -> dict[str, Any]:
    return {"smoke": smoke, "cpu": cpu, "paper": paper}


# The MNIST models of the GAT chapters (natural and Madry classifiers, the four detector systems of GAT Table 6):
# both GAT chapters carry these parameters, so that the second finds the first's models in the cache.
_GAT_TRAINING: dict[str, dict[str, Any]] = {
    "SEED": _same(0),
    "DATASET": _same("mnist"),
    "TRAIN_SUBSET": _by(1500, None, None),   # training images used (None: all)
    "WIDTH": _by(0.25, 0.5, 1.0),             # channel multiplier of the Madry CNN (paper: 1.0)
    # natural classifier: Adam 5e-4, batch 32, 10 epochs. Measured 2026-12-07 on 2 cores: at 5 epochs 0.9898 of
    # the test images, at the paper's 10 epochs 0.9910 (validation 0.9914), ~21 s an epoch
    "NAT_EPOCHS": _by(1, 10, 10),
    "NAT_LR": _same(5e-4),
    "NAT_BATCH": _same(32),
    "MADRY_EPOCHS": _by(1, 10, 83),           # Madry's checkpoint: 100k steps of 50 images (83 epochs)
    "MADRY_STEPS": _by(3, 5, 40),             # PGD of adversarial training, L-inf 0.3 (paper: 40 x 0.01)
    "MADRY_STEP": _by(0.1, 0.15, 0.01),       # cpu: 2.5 eps / steps, sign steps from a random start
    "MADRY_LR": _by(1e-3, 1e-3, 1e-4),
    "MADRY_BATCH": _same(50),
    "MADRY_WARMUP": _by(0.5, 1.5, 0.0),       # epochs over which the training eps ramps up from 0.3 x 0.3
    "MADRY_DROPS": _by([], [8], []),          # epochs at which the learning rate drops tenfold
    # the arithmetic of the Madry classifier's and the detectors' training steps: "bf16" runs their forward passes
    # under bfloat16 autocast (float32 weights; every evaluation in float32). Measured 2026-12-06 on 2 cores:
    # Madry's 10 epochs 1.33x faster side by side, and the same model strength (clean 0.9885, PGD-100 0.929,
    # AutoAttack 0.892 against 0.9891 / 0.930 / 0.890 in float32); the L-inf 0.3 detectors started from it and
    # trained in bfloat16: AUC 0.9945-0.9998 (mean 0.9979) under the 200-step attack, 500 negatives each
    # (float32: worst 0.9944, mean 0.9979); the L-inf 0.5 system continued from them in bfloat16: worst of ten
    # 0.9685 (float32: 0.9673); benchmarks/mixed_precision.py measures the speed on yours
    "PRECISION": _by("bf16", "bf16", "fp32"),
    # what the detectors start from: "scratch" (GAT on MNIST) or "madry", the robust classifier's logit k (GAT's
    # start on CIFAR-10 is a classifier's logit k too, a natural one there)
    "GAT_INIT": _by("madry", "madry", "scratch"),
    # epochs and learning rate: one number for every configuration, or one per configuration of Table 6. Measured
    # 2026-12-07 on 2 cores (AUC under the chapter's 200-step attacks): L2 5.0 after 2 epochs 0.9612 / 0.9426
    # (k=0 / 1; final loss 0.386), 4 epochs 0.9751 / 0.9688 (0.285), at 2e-4 for 2 epochs 0.9564 / 0.9510; the
    # L-inf 0.5 system after 5 epochs: worst of ten 0.9672, against 0.9685 after 4
    "GAT_EPOCHS": _by(1, {"Linf 0.3": 1, "Linf 0.5": 4, "L2 2.5": 1, "L2 5.0": 5}, 100),   # paper: 100
    "GAT_M": _by(8, 32, 32),                  # positives (and negatives) per detector per step (paper: ~32)
    "GAT_LR": _by(1e-3, {"Linf 0.3": 2e-4, "Linf 0.5": 5e-4, "L2 2.5": 2e-4, "L2 5.0": 5e-4}, 5e-4),
    # a curriculum: these configurations start from the trained detectors of a smaller budget (the paper trains
    # every configuration from scratch)
    "GAT_CONTINUE": _by({"Linf 0.5": "Linf 0.3"}, {"Linf 0.5": "Linf 0.3"}, {}),
    # training attacks per configuration of Table 6: [steps, step size] of Adam PGD (paper: Table 6)
    "TRAIN_ATTACKS": _by({"Linf 0.3": [2, 0.1], "Linf 0.5": [2, 0.15], "L2 2.5": [2, 1.0], "L2 5.0": [2, 2.0]},
                         {"Linf 0.3": [10, 0.04], "Linf 0.5": [15, 0.05], "L2 2.5": [10, 0.4],
                          "L2 5.0": [20, 0.3]},
                         {"Linf 0.3": [100, 0.01], "Linf 0.5": [100, 0.01], "L2 2.5": [100, 0.1],
                          "L2 5.0": [200, 0.1]}),
    "MONITOR": _by(5, 20, 100),               # negatives per detector for the per-epoch AUC curves (Fig 11)
    "SELECT_BEST": _by(False, False, True),   # keep each detector's best epoch by validation AUC (paper: yes)
    "SELECT_NEG": _by(5, 50, 200),            # validation negatives per detector for that choice
}

# chapter -> parameter -> profile -> value. The ``paper`` column is the papers' setting wherever the papers give
# one; a chapter's settings table shows it beside the value in force.
TABLE: dict[str, dict[str, dict[str, Any]]] = {
    # GAT Appendix F: density estimation on synthetic 1D and 2D data (Figs 19, 20).
    "density": {
        "SEED": _same(0),
        "HIDDEN_1D": _by(32, 128, 500),         # width of the 5 hidden layers (paper: 500)
        "HIDDEN_2D": _by(32, 128, 500),
        "LR": _same(1e-4),                      # Adam (the authors' synthetic notebooks: 1e-4)
        "STEPS_1D": _by(40, 1500, 5000),        # optimiser steps, full batch (500 positives + 500 negatives)
        "PGD_STEPS_1D": _by(5, 20, 20),         # paper: 20 steps of 0.05, L-inf eps 0.3
        "PGD_STEP_1D": _same(0.05),
        "EPS_1D": _same(0.3),
        "GRID_1D": _same(2000),                 # grid points on [0, 1] for the densities
        "STEPS_2D": _by(30, 1500, 5000),        # optimiser steps, batches of 250 positives + 250 negatives
        "WARMUP_2D": _by(10, 300, 500),         # of which discriminative at first (the authors' notebooks: 500)
        "BATCH_2D": _same(250),
        "PGD_STEPS_2D": _by(3, 10, 10),         # paper: 10 steps of 0.05, L-inf eps 0.5
        "PGD_STEP_2D": _same(0.05),
        "EPS_2D": _same(0.5),
        "PGD_STEP_2D_SMALL": _same(0.01),       # our addition: the same attack within L-inf 0.1
        "EPS_2D_SMALL": _same(0.1),
        "SETS_2D": _by(["ring"], ["ring", "grid", "spirals", "checkerboard"],
                       ["ring", "grid", "spirals", "checkerboard"]),
        "GRID_2D": _by(60, 200, 300),           # grid points per axis for the 2D maps
    },
    # ARCLU Section 3.1 (Figs 1-2): do adversarial representations form clusters that overlap the benign ones?
    "motivation": {
        "SEED": _same(0),
        "DATASET": _same("mnist"),
        "TRAIN_SUBSET": _by(1000, None, None),
        "WIDTH": _by(0.25, 0.25, 1.0),          # channel multiplier of ARCLU's MNIST encoder (paper: 1.0)
        "EPOCHS": _by(1, 3, 20),                # the Eq. 10 encoder and the softmax classifier (paper: not given)
        "LR": _same(1e-3),                      # Adam, batch 100 (the authors' code)
        "BATCH": _same(100),
        "N_POINTS": _by(150, 2000, 5000),       # benign points embedded (and as many adversarial ones)
        "EPS": _same(0.3),                      # A_{y=i}: targeted L-inf PGD, sign steps from the natural image
        "ATTACK_STEPS": _by(5, 20, 40),         # (paper: the training attack, 40 steps of 0.01)
        "ATTACK_STEP": _by(0.06, 0.02, 0.01),
        "PERPLEXITY": _same(30.0),              # t-SNE (scikit-learn, PCA initialisation)
        "UMAP_NEIGHBORS": _same(15),            # UMAP (umap-learn), min_dist 0.1
        "KNN": _same(10),                       # neighbours of the separability score
    },
    # ARCLU Sections 3.2-3.3, 5: the Gaussian-mixture detector with an adversarial cluster (Algorithm 1), L-Ben.
    "cluster_separation": {
        "SEED": _same(0),
        "DATASET": _same("mnist"),
        "TRAIN_SUBSET": _by(1000, None, None),
        "WIDTH": _by(0.25, 0.25, 1.0),          # channel multiplier of ARCLU's MNIST encoder (paper: 1.0)
        "L": _same(1),                          # coordinates per class, m = k * l (the authors' code: l = 1)
        "M": _same(10.0),                       # value of a class mean on its coordinates (the authors' code: 10)
        "EPOCHS": _by(1, 8, 50),                # Algorithm 1 (paper: 50 epochs on MNIST)
        "LR": _same(1e-3),                      # Adam, batch 100
        "BATCH": _same(100),
        "EPS": _same(0.3),
        "TRAIN_STEPS": _by(3, 5, 40),           # adaptive PGD of Eq. 17 while training (paper: 40 x 0.01)
        "TRAIN_STEP": _by(0.1, 0.15, 0.01),     # cpu: 2.5 eps / steps, as the Madry classifier's
        "WARMUP": _by(0.5, 1.5, 0.0),           # epochs over which the training eps ramps up from 0.3 x 0.3
        "DROPS": _by([], [6], []),              # epochs at which the learning rate drops tenfold
        # the training steps' arithmetic ("bf16": bfloat16 autocast, as the GAT chapters' PRECISION). Measured
        # 2026-12-06: ARCLU trained in bfloat16 against float32, the authors' own check ASR-5 0.066 vs 0.083, EROC
        # over the misclassified examples alone 0.920 vs 0.882, untargeted L-inf 0.3 ASR-1 (100 steps, 500 images)
        # 0.207 vs 0.203
        "PRECISION": _by("bf16", "bf16", "fp32"),
        "TRAIN_FPR": _same(0.01),               # thresholds that decide a training attack's success
        "N_TEST": _by(100, 500, 10000),         # test images attacked (a fixed seeded subset)
        "EVAL_STEPS": _by(10, 100, 1000),       # evaluation attack (paper: 1000 steps, Fig 7)
        "EVAL_STEP": _same(0.01),
        "N_POINTS": _by(150, 1000, 5000),       # benign points embedded (and as many adversarial ones)
        "PERPLEXITY": _same(30.0),
        "UMAP_NEIGHBORS": _same(15),
        "KNN": _same(10),
        # ARCLU on CIFAR-10: runs only where asked (paper profile) and the data is present
        "CIFAR": _by(False, False, True),
        "CIFAR_ARCH": _by("resnet18", "resnet18", "wrn-34-10"),   # the paper: a Wide ResNet (TRADES' models)
        "CIFAR_WIDTH": _by(0.0625, 0.25, 1.0),
        "CIFAR_EPOCHS": _by(1, 5, 70),          # paper: 70 epochs
        "CIFAR_EPS": _same(0.03),
        "CIFAR_TRAIN_STEPS": _by(2, 10, 20),    # paper: 20 steps of 0.007
        "CIFAR_TRAIN_STEP": _same(0.007),
        "CIFAR_N_TEST": _by(50, 500, 10000),
        "CIFAR_EVAL_STEPS": _by(5, 100, 1000),
        "CIFAR_EVAL_STEP": _same(0.007),
        # ARCLU Table 1's baselines that no other chapter trains (the head-to-head chapter attacks them):
        # TRADES (Zhang et al. 2019) on the GAT chapters' network and data, beside their Madry classifier
        "TRADES_BETA": _same(6.0),                # TRADES' MNIST setting (1 / lambda = 6)
        "TRADES_EPOCHS": _by(1, 10, 100),
        "TRADES_STEPS": _by(3, 5, 40),            # inner KL attack, L-inf 0.3 (TRADES: 40 x 0.01)
        "TRADES_STEP": _by(0.1, 0.15, 0.01),
        "TRADES_WARMUP": _by(0.5, 1.5, 0.0),      # the Madry classifier's eps warm-up and schedule (GAT chapters)
        "TRADES_DROPS": _by([], [8], []),
        # its training's arithmetic (as the GAT chapters' PRECISION). Trained in bfloat16 (2026-12-06) it reached
        # clean 0.983, PGD-100 0.918 (1,000 images) and AutoAttack 0.896 (500), just under the book's aims of 0.92
        # and 0.90 that the float32 model meets (0.936, 0.910): TRADES stays in float32
        "TRADES_PRECISION": _same("fp32"),
        "TRADES_AA_N": _by(20, 500, 10000),       # TRADES under PGD-100 and AutoAttack (standard) on this many
        "TRADES_N": _by(50, 1000, 10000),         # test images (PGD-100) and the first TRADES_AA_N of them
        # Resisting (Ghosh et al. 2019): a Gaussian-mixture VAE; ARCLU gives only "a 10-layer CNN VAE" on MNIST
        "RES_WIDTH": _by(0.25, 1.0, 1.0),         # channel multiplier of the VAE (conv 32, 64; FC 256 at 1.0)
        "RES_M": _same(10.0),                     # distance of the mixture means from the origin (ARCLU's M)
        "RES_EPOCHS": _by(1, 10, 50),
        "RES_LR": _same(1e-3),
        "RES_BATCH": _same(100),
    },
    # GAT Sections 3-5.1, Appendices A.1, C.1: the MNIST detectors and their robustness tests.
    "gat_detectors": {
        **_GAT_TRAINING,
        "CLF_N": _by(50, 1000, 10000),            # test images attacked by PGD-100 in the classifiers' table
        "AA_N": _by(20, 500, 10000),              # of which AutoAttack (standard version) attacks the first ones
        "EVAL_NEG": _by(10, 60, 1000),            # attacked negatives per detector in the robustness tests
        "AUC_NEG": _by(10, 500, 1000),            # ... for all ten detectors of Tables 11 and 12
        "EVAL_STEPS": _by(10, 200, 200),          # the robustness test's attack (paper: 200 steps)
        "STRONG_STEPS": _by(20, 400, 2000),       # the much stronger attack of Tables 1, 8 (paper: 2000)
        "RESTARTS": _by(2, 5, 50),                # Table 10 (paper: 50 random restarts)
        # Table 18's lesson: detectors trained with too large a step ([steps, step size] of L-inf 0.3 training
        # attacks; the paper's bad CIFAR-10 setting takes steps of half the eps)
        "BAD_ATTACKS": _by([[2, 0.3]], [[2, 0.3]], [[10, 0.15], [2, 0.3]]),
        # GAT Section 5.2 / App. A.2 on CIFAR-10: runs only where asked (paper profile) and the data is present
        "CIFAR": _by(False, False, True),
        "CIFAR_ARCH": _by("resnet18", "resnet18", "wrn-34-10"),
        "CIFAR_WIDTH": _by(0.0625, 0.25, 1.0),    # channel multiplier of resnet18 (the WRN has fixed widths)
        "CIFAR_CLF_EPOCHS": _by(1, 10, 100),      # the natural classifier (paper: Madry's natural checkpoint, 95%)
        "CIFAR_CLF_LR": _same(0.1),               # SGD, momentum 0.9, wd 2e-4, divided by 10 at CIFAR_CLF_DROPS
        "CIFAR_CLF_DROPS": _by([1], [5, 8], [50, 75]),
        "CIFAR_CLF_BATCH": _same(128),
        "CIFAR_GAT_EPOCHS": _by(1, 2, 267),       # paper: 40k steps of ~30 + 30 images per detector (267 epochs)
        "CIFAR_M": _by(4, 30, 30),
        "CIFAR_LR": _same(1e-3),                  # SGD, momentum 0.9, weight decay 2e-4
        "CIFAR_EVAL_NEG": _by(10, 100, 1000),
    },
    # GAT Sections 4.2-4.3, 5.1, Appendix B: detection and classification with a reject option, mean L2.
    "gat_detection": {
        **_GAT_TRAINING,
        "N_TEST": _by(30, 200, 10000),            # test images attacked (a fixed seeded subset; paper: all)
        "ATTACK_STEPS": _by(5, 100, 100),         # paper: 100 steps of 0.01, Adam PGD (MNIST)
        "ATTACK_STEP": _same(0.01),
        "N_L2": _by(5, 40, 1000),                 # samples of the mean-L2 binary search
        "L2_ROUNDS": _by(2, 10, 20),              # binary-search rounds on c (paper: 20)
        "L2_STEPS": _by(10, 150, 1000),           # Adam steps per round (paper: 1000 of lr 1.0)
        "L2_LR": _same(1.0),
    },
    # ARCLU Section 5 and GAT Section 4 under one suite: eleven defences, adaptive white-box, multi-targeted,
    # black-box and AutoAttack (the defences' own settings come from the chapters that train them)
    "adaptive": {
        "SEED": _same(0),
        "N_TEST": _by(20, 500, 1000),             # attacked test images, a fixed seeded stratified subset
        # processes attacking the defences at once, each with its share of the threads (at most the threads this
        # chapter has: one where the book runs two chapters at a time); benchmarks/parallel_suite.py measures it
        "WORKERS": _by(1, 2, 1),
        "N_SUBSET": _by(10, 100, 1000),           # its first ones: convergence, APGD check, the papers' protocols
        # the defences whose gradient attacks run their forward passes in bfloat16 (autocast; success is judged in
        # float32 all the same, and the APGD check, AutoAttack and the papers' protocols stay in float32): GAT's
        # two classifiers, which run ten detectors per step - about half the chapter's attack time. Measured
        # 2026-12-06 on the first 100 images, L-inf 0.3, 50 steps, one thread: GAT generative 16.2 s -> 10.6 s
        # (composite, APGD; ASR-1 0.10 -> 0.09) and 15.4 s -> 10.6 s (its paper objective, fixed steps; 0.06 both);
        # GAT integrated 20.7 s -> 13.1 s (fixed steps; 0.21 -> 0.22), 4.0 s -> 3.4 s (APGD; 0.25 -> 0.27); Madry
        # 1.7 s -> 1.2 s and ARCLU 1.2 s -> 1.1 s, too little to be worth any doubt
        "ATTACK_PRECISION": _by({"GAT generative": "bf16", "GAT integrated": "bf16"},
                                {"GAT generative": "bf16", "GAT integrated": "bf16"}, {}),
        "N_BLACKBOX": _by(10, 40, 500),           # its first ones: NES and HopSkipJump
        "AA_N": _by(10, 100, 1000),               # its first ones: AutoAttack on each defence's composite classifier
        "FPRS": _by([1, 5], [1, 2, 5], [1, 2, 5, 10]),  # ASR-p: thresholds at p% false positives (ARCLU: 1)
        # the p that white-box attacks aim at, each with its own runs; every p is scored by the best example of
        # any run under its own thresholds, each run offering its best iterate and, for every other p, the first
        # iterate that passed under tau_p (measured 2026-12-03 on the first 100 images, L-inf 0.3, the composite
        # loss under APGD aimed at 5%: its final examples broke 6 of GAT integrated's 100 and 6 of ARCLU's 99 at
        # 1%, while its iterates had passed under tau_1 on 21 and 17 - as many as a run aimed at 1% breaks)
        "ATTACK_PS": _by([5], [5], [1, 2, 5, 10]),
        "STEPS": _by(5, 10, 1000),                # PGD/MIM steps (ARCLU: 1000, Fig 7)
        "RULE": _by("apgd", "apgd", "steepest"),  # apgd: Croce & Hein's adaptive step from 2 eps (L-inf, L2)
        "LOSSES": _by(["composite"], ["composite"], ["paper", "composite"]),  # Tables 2 and 4 (paper: Table 1's)
        # the threat models where the suite goes deep (untargeted and targeted): every defence's paper objective
        # and the composite loss, DEEP_STEPS steps, on all N_TEST images - where the independent checks, the
        # papers' own attacks and ARCLU's headline figures are compared (the paper profile is deep everywhere)
        # (L-inf 0.4 too at cpu: at 10 steps its union fell below L-inf 0.3's on Resisting, LID and MAHA, and on the
        # first 100 images 1,000 steps broke 0.93 of TRADES and 0.99 of Madry where 10 steps broke 0.17 and 0.46)
        "DEEP_BUDGETS": _by([["linf", 0.3]], [["linf", 0.3], ["linf", 0.4]], []),
        # 50 APGD steps at cpu (100 until 2026-12-06): with the paper-strength models most of the 500 images resist
        # every step of every deep run, and 100 steps put the chapter at about two hours on 2 cores; the
        # convergence section shows what the shorter runs leave (ASR-1 at the suite's steps against 1,000)
        "DEEP_STEPS": _by(10, 50, 1000),
        "DEEP_LOSSES": _same(["paper", "composite"]),
        # and, where their rule is APGD's, the paper objective under fixed steepest steps of this fraction of eps
        # from the clean input (0.01 at L-inf 0.3, most papers' step): on the book's ARCLU it breaks 0.24 of the 500
        # images at L-inf 0.3 untargeted where the two APGD runs break 0.16 (fixed steps from a random start: 0.14)
        "DEEP_FIXED_STEP": _same(1 / 30),
        # the deep threat models that get that fixed-step run: at L-inf 0.4 it added at most one image of the first
        # 100 to the two APGD runs' ASR-1 on Madry, ARCLU, L-Ben and both GAT classifiers (targeted and untargeted,
        # measured 2026-12-06), and on GAT integrated, untargeted, it took 74 s of the three runs' 122 s
        "DEEP_FIXED_BUDGETS": _by([["linf", 0.3]], [["linf", 0.3]], []),
        # the fixed-step run's steps: 100 at cpu, ARCLU's own protocol (on ARCLU's paper objective, first 100
        # images, fixed steps of 0.01 from the image: ASR-1 0.212 after 50 steps, 0.242 after 100 and after 200,
        # measured 2026-12-06), and untargeted only: the targeted fixed-step runs added no image to the union of
        # the L-inf 0.3 runs on GAT's two classifiers, ARCLU, L-Ben, Madry or TRADES (the untargeted one added 43
        # on ARCLU)
        "DEEP_FIXED_STEPS": _by(10, 100, 1000),
        "DEEP_FIXED_TARGETED": _same(False),
        # and the defences it runs on (None: every one). At cpu those where it found images that no other L-inf 0.3
        # PGD run of the suite found, on the 500 images (measured 2026-12-06): ARCLU 59, GAT integrated 4,
        # Resisting 4; on GAT generative, L-Ben, Madry, TRADES, Vanilla, FS, LID and MAHA none, for 205 s of the
        # chapter's computation (115 s of them on GAT generative)
        "DEEP_FIXED_DEFENCES": _by(None, ["ARCLU", "GAT integrated", "Resisting"], None),
        # step sizes per norm; every white-box attack keeps the per-sample best over them (ARCLU: 3 to 8 sizes)
        "STEP_SIZES": _by({"linf": [0.05], "l2": [0.3], "l1": [2.0], "l0": [1.0]},
                          {"linf": [0.05], "l2": [0.3], "l1": [2.0], "l0": [1.0]},
                          {"linf": [0.0025, 0.005, 0.01], "l2": [0.02, 0.05, 0.1], "l1": [0.25, 0.5, 1.0],
                           "l0": [0.25, 0.5, 1.0]}),
        # ARCLU Table 2's budgets on MNIST (targeted and untargeted each)
        "BUDGETS": _same([["linf", 0.3], ["linf", 0.4], ["l2", 2.0], ["l1", 15.0], ["l0", 25.0]]),
        "CW_EPS": _same(2.0),                     # ARCLU Table 4: CW within L2 2.0, 5 binary searches
        "CW_SEARCHES": _by(2, 5, 5),
        "CW_STEPS": _by(5, 100, 1000),
        "CW_N": _by(20, 100, 1000),               # its first ones: CW (a search of CW_SEARCHES x CW_STEPS per image)
        "CW_LR": _by(0.1, 0.1, 0.01),             # step size (steepest: L2 length of a step; adam: learning rate)
        # L2-normalised steps where the search is short (5 rounds of 100 steps on the book's Vanilla classifier,
        # kappa 0.5: Adam at 0.05 from c 1 found a success within L2 2.0 for 10 of 100 images, normalised steps of
        # 0.1 from c 10 for 37, Adam from c 10 for 11); CW's own Adam where it runs 1,000
        "CW_RULE": _by("steepest", "steepest", "adam"),
        "CW_C": _by(10.0, 10.0, 1.0),             # first penalty constant of the binary search
        "CW_KAPPA": _same(0.25),                  # CW's confidence: aim this far from tau to the class's median score
        "MIM_EPS": _same(0.4),                    # MIM (decay 0.9) and FGSM at L-inf 0.4 (ARCLU Table 4)
        "MT_BUDGETS": _by([["linf", 0.3]], [["linf", 0.3]], [["linf", 0.3], ["l2", 2.0]]),
        # multi-targeted attack per target: Tramer et al.'s 100 steps with their loss (the targeted composite) at cpu.
        # Measured 2026-12-06 on the first 100 images at L-inf 0.3: with 50 steps and the paper objective besides,
        # the paper objective's runs found one image that no other run found (L-Ben) for 273 s, and AutoAttack broke
        # 4 images of GAT integrated that nothing in the suite did; the composite's runs with 100 steps break 3 of
        # those 4 in bfloat16 and 2 in float32 (with 50 steps: 1 in either)
        "MT_STEPS": _by(5, 100, 100),
        "MT_N": _by(10, 100, 1000),               # its first ones (K - 1 runs per image and loss)
        "MT_LOSSES": _by(["composite"], ["composite"], ["composite", "paper"]),  # targeted forms
        # and more losses on some defences: on L-Ben's first 100 images (measured 2026-12-06) its paper objective's
        # 100-step runs broke 23 where the composite's broke 21, and the 2 images that only the APGD check had found
        # (16 s; on GAT generative they broke 7 where the composite's broke 8, in 144 s, and found nothing new)
        "MT_MORE_LOSSES": _by({}, {"L-Ben": ["paper"]}, {}),
        # and, per target, the paper objective under the fixed-step run's steps from the clean image, on these
        # defences (None: every one): on ARCLU's first 100 images (measured 2026-12-06) it broke 0.28 at 1% where
        # the multi-targeted attack under APGD broke 0.08 and the untargeted fixed-step run 0.24 (the composite
        # under the same fixed steps: 0.17), in 34 s
        "MT_FIXED_DEFENCES": _by(None, ["ARCLU"], None),
        "SANITY_BUDGETS": _same([["linf", 1.0], ["l2", 6.0]]),
        "SANITY_STEPS": _by(5, 100, 1000),        # unbounded budgets need the deep attack's steps, not the short one's
        "SANITY_N": _by(10, 100, 1000),           # its first ones
        # their step sizes (steepest descent, per-sample best): a small one and, for L2, one that crosses the
        # ball in a few steps (APGD's first step of 2 eps overshoots an unbounded budget into the box's corners)
        "SANITY_STEP_SIZES": _by({"linf": [0.1], "l2": [0.5]}, {"linf": [0.05], "l2": [0.3, 1.0]},
                                 {"linf": [0.01], "l2": [0.05, 0.25]}),
        "BB_LINF": _same(0.3),                    # black-box budgets (ARCLU Table 3, MNIST)
        "BB_L2": _same(2.0),
        "TRANSFER_STEPS": _by(5, 100, 1000),      # PGD on the surrogate, step 0.01
        "NES_STEPS": _by(3, 20, 500),
        "NES_STEP": _by({"linf": 0.05, "l2": 0.3}, {"linf": 0.02, "l2": 0.15}, {"linf": 0.005, "l2": 0.05}),
        "NES_SIGMA": _same(0.01),
        "NES_SAMPLES": _by(4, 10, 50),            # antithetic pairs per step (2x queries)
        "HSJ_STEPS": _by(2, 8, 64),              # HopSkipJump iterations (foolbox default 64)
        "HSJ_EVALS": _by(10, 40, 100),            # its initial gradient-estimation queries
        "APGD_BUDGETS": _by([["linf", 0.3]], [["linf", 0.3]], [["linf", 0.3], ["l2", 2.0]]),
        "APGD_STEPS": _by(10, 100, 1000),         # APGD (Croce & Hein's step rule) on the defences' own losses
        # its losses ("paper": each defence's paper objective; the composite loss under APGD is the convergence run)
        "APGD_LOSSES": _by(["paper"], ["paper"], ["paper", "composite"]),
        "PROTOCOL_STEPS": _by(10, 100, 1000),     # the papers' own attacks where they take the chapter's steps
        "AA_BUDGETS": _by([["linf", 0.3]], [["linf", 0.3]], [["linf", 0.3], ["l2", 2.0]]),
        # custom: APGD-CE + APGD-T only (AutoAttack's first two attacks at their standard budget on the cpu
        # profile; FAB-T and Square on a composite classifier, one call per true class, take minutes per image)
        "AA_VERSION": _by("custom", "custom", "standard"),
        "AA_ITER": _by(5, 100, 100),
        "AA_TARGETS": _by(2, 9, 9),
        # the head-to-head ranks the defences within RANK_BUDGET, ARCLU's headline budget and the one the
        # adversarially trained models of chapters 02 and 04 (GAT's detectors, Madry, ARCLU, L-Ben, TRADES) were
        # trained for: per image, every white-box attack of the suite there together (the worst cases lie beyond
        # it, at L-inf 0.4).
        "RANK_BUDGET": _same(["linf", 0.3]),
        # convergence (ARCLU Figs 6-7): each defence's strongest single PGD run within RANK_BUDGET again on the
        # first N_SUBSET points, one traced run of CONV_STEPS with that run's loss and rule, and steepest runs of
        # CONV_SIZE_STEPS at each fraction of eps in CONV_STEP_SIZES
        "CONV_STEPS": _by(16, 1000, 2000),
        "CONV_SIZE_STEPS": _by(5, 50, 1000),
        "CONV_STEP_SIZES": _by([0.1], [1 / 30, 1 / 6], [1 / 120, 1 / 60, 1 / 30, 1 / 12, 1 / 6]),
        "FS_MEDIAN": _same(2),                    # median filter size (Xu et al. on MNIST: 2x2)
        "FEATURE_FIT": _by(200, 1000, 10000),     # training images (and their PGD examples) fitting LID / MAHA
        "LID_REFERENCE": _same(100),              # LID's reference batch (Ma et al.: minibatch 100)
        "LID_K": _same(20),                       # LID's neighbours (Ma et al.: 20 on MNIST)
    },
    # GAT Sections 3.2, 5.1-5.2 and Appendix D: what attacking the detectors produces (the models come from
    # the GAT and cluster separation chapters)
    "synthesis": {
        "SEED": _same(0),
        # targeted attack of Fig 3: raise the target's logit within L-inf 0.4, 100 steps of 0.01 (GAT's MNIST
        # attacks run Adam on the perturbation)
        "TARGETED_EPS": _same(0.4),
        "TARGETED_STEPS": _by(10, 100, 100),
        "TARGETED_STEP": _by(0.04, 0.01, 0.01),
        "TARGETED_RULE": _same("adam"),
        "TARGETED_N": _by(20, 200, 1000),          # test images toward a random other class, judged
        "HIST_CLASS": _same(1),                    # Fig 8: class 1's logit
        "HIST_N": _by(20, 200, 1000),              # natural class-1 images, and other-class images pushed to 1
        # class-conditional synthesis of Fig 6 (Santurkar et al.): L2 eps 30, 60 steps of 0.5, no random start
        "GAUSS_REG": _same(1e-4),                  # covariance + 1e-4 I
        "SYN_PER_CLASS": _by(2, 10, 10),
        "SYN_EPS": _same(30.0),
        "SYN_STEPS": _by(10, 60, 60),
        "SYN_STEP": _same(0.5),
        # Gaussian-noise attack of Fig 18: unconstrained L2, step 0.5, shown at steps 0, 50, ..., 200
        "NOISE_STEPS": _by(20, 200, 200),
        "NOISE_EVERY": _by(5, 50, 50),
        "NOISE_STEP": _same(0.5),
        "NOISE_SEED": _same(0),
        "JUDGE_K": _same(5),                       # neighbours of the pixel-space kNN judge
        # GAT Fig 5 / 13 and Fig 10 on CIFAR-10: only where asked (paper profile) and the data is present
        "CIFAR": _by(False, False, True),
        "CIFAR_TARGETED_EPS": _same(12 / 255),     # Fig 5: L-inf 12, 30 steps of 2.0 (0-255 scale)
        "CIFAR_TARGETED_STEPS": _by(3, 30, 30),
        "CIFAR_TARGETED_STEP": _same(2 / 255),
        "CIFAR_SYN_EPS": _same(30.0),              # Fig 6 (0-1 units; Fig 13's L-inf 16 detectors: eps 100)
        "CIFAR_SYN_STEPS": _by(5, 60, 60),
        "CIFAR_SYN_STEP": _same(0.5),
    },
    # The verdict: the papers' headline claims judged from the executed chapters' glued figures
    "verdict": {
        "CHAPTERS": _same("book"),                # where the executed chapters are read from (repository-relative)
        "TOLERANCE": _same(0.0),                  # extra slack on the paper's side of a figure claimed by a paper
    },
}


def active() -> str:
    """The profile named by ``ADVDETECT_PROFILE`` (default ``cpu``), checked."""
    return check(os.environ.get(ENV_VAR, DEFAULT_PROFILE))


def check(profile: str) -> str:
    """Return ``profile`` if it is known, else raise :class:`ProfileError` listing the choices."""
    if profile not in PROFILES:
        raise ProfileError(
            f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)} "
            f"(set {ENV_VAR} or pass -p PROFILE <name> to papermill)"
        )
    return profile


def _chapter(chapter: str) -> dict[str, dict[str, Any]]:
    if chapter not in TABLE:
        raise ProfileError(f"unknown chapter {chapter!r}: known chapters are {', '.join(sorted(TABLE))}")
    return TABLE[chapter]


# What :func:`settle` last put into a notebook's namespace per chapter, so that a re-run tells overrides apart.
_ISSUED: dict[str, tuple[str, dict[str, Any]]] = {}


def defaults(chapter: str, profile: str | None = None) -> dict[str, Any]:
    """The parameter values of ``chapter`` at ``profile`` (default: the active profile)."""
    profile = check(profile if profile is not None else active())
    return {name: _copy(col[profile]) for name, col in _chapter(chapter).items()}


def _copy(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    return list(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Settings:
    """The effective parameters of one run: values, where each came from, and the paper profile's value."""

    chapter: str
    profile: str
    params: dict[str, Any]
    sources: dict[str, str]

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The setting ``key``, or ``default`` where the chapter has none (as a dict's ``get``)."""
        return self[key] if key in self else default

    def __contains__(self, key: str) -> bool:
        return key in self.params

    def paper_value(self, name: str) -> Any:
        return TABLE[self.chapter][name]["paper"] if name in TABLE[self.chapter] else None

    def differences_from_paper(self) -> dict[str, tuple[Any, Any]]:
        """Names whose value differs from the ``paper`` profile, as ``{name: (ours, paper's)}``."""
        return {k: (v, self.paper_value(k)) for k, v in self.params.items() if v != self.paper_value(k)}

    def frame(self) -> pd.DataFrame:
        """Every setting: name, value, where it came from and the paper profile's value."""
        rows = [
            {"parameter": k, "value": _fmt(v), "source": self.sources[k], "paper profile": _fmt(self.paper_value(k))}
            for k, v in self.params.items()
        ]
        return pd.DataFrame(rows).set_index("parameter")

    def table(self) -> "SettingsTable":
        """What a chapter shows of its settings: the ones that differ from the paper's, ours beside the paper's,
        in a block that opens on a click (the full list is :meth:`frame`)."""
        return SettingsTable(self)


class SettingsTable:
    """A chapter's settings as the book shows them: a collapsed block, one row per setting that differs from the
    ``paper`` profile (ours, the paper's, and whether this run changed it from the profile)."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def rows(self) -> pd.DataFrame:
        s = self.settings
        diff = s.differences_from_paper()
        changed = [k for k, src in s.sources.items() if src == "override"]
        names = [k for k in s.params if k in diff or k in changed]
        return pd.DataFrame({"this run": [_fmt(s.params[k]) for k in names],
                             "the paper's": [_fmt(s.paper_value(k)) for k in names],
                             "set here": ["yes" if k in changed else "" for k in names]},
                            index=pd.Index(names, name="setting"))

    def summary(self) -> str:
        s = self.settings
        n = len(self.rows())
        changed = sum(src == "override" for src in s.sources.values())
        return (f"Settings: profile {s.profile}, {n} of {len(s.params)} differ from the paper's"
                + (f", {changed} set in this run" if changed else ""))

    def _repr_html_(self) -> str:
        rows = self.rows()
        body = (rows.to_html(classes="advdetect-settings", border=0, escape=True) if len(rows)
                else "<p>Every setting is the paper's.</p>")
        return f"<details><summary>{self.summary()} (click to open)</summary>\n{body}\n</details>"

    def __repr__(self) -> str:
        return self.summary()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _expected(chapter: str, name: str) -> tuple[type, ...]:
    """The types a setting may take: those of its values across the profiles (an int where a float is
    expected; None where some profile has None)."""
    kinds = set()
    for v in TABLE[chapter][name].values():
        kinds.add(type(v))
    if float in kinds:
        kinds.add(int)
    return tuple(kinds)


def _type_ok(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)


def settle(chapter: str, namespace: MutableMapping[str, Any]) -> Settings:
    """Finish a notebook's parameters and return the effective settings.

    ``namespace`` is the notebook's ``globals()``. ``PROFILE`` (default: the active profile) names the profile;
    every setting of ``chapter`` takes that profile's value unless the namespace sets it (papermill's injected
    parameters, or a line the reader added), which is then an override. A value this function put into the
    namespace before (a re-run of the notebook) is not taken for an override. Overrides are checked against the
    types of the profiles' values (ints are accepted where floats are expected and converted). Unknown
    upper-case names fail with the list of known ones. Every setting ends up in the namespace.
    """
    table = _chapter(chapter)
    profile = check(namespace.get("PROFILE", active()))
    fresh = {name: _copy(col[profile]) for name, col in table.items()}
    previous = _ISSUED.get(chapter, (None, {}))[1]
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in table:
        if name in namespace and not (name in previous and namespace[name] == previous[name]):
            value = namespace[name]
            kinds = _expected(chapter, name)
            if not _type_ok(value, kinds):
                raise ProfileError(f"parameter {name} of chapter {chapter!r} must be "
                                   f"{' or '.join(sorted(k.__name__ for k in kinds))}, got {value!r}")
            if isinstance(value, int) and not isinstance(value, bool) and float in kinds and int not in {
                    type(v) for v in table[name].values()}:
                value = float(value)
            source = "override" if value != fresh[name] else f"profile {profile}"
        else:
            value, source = fresh[name], f"profile {profile}"
        namespace[name] = value
        values[name], sources[name] = value, source
    unknown = sorted(k for k in namespace if k.isupper() and k not in table and k != "PROFILE"
                     and not k.startswith("_"))
    if unknown:
        raise ProfileError(f"unknown parameter(s) {', '.join(unknown)} for chapter {chapter!r}: "
                           f"known are {', '.join(table)}")
    _ISSUED[chapter] = (profile, {k: _copy(v) for k, v in values.items()})
    return Settings(chapter=chapter, profile=profile, params=values, sources=sources)
