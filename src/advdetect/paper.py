"""Numbers reported by the papers, for the tables that put ours beside theirs (always labelled as the paper's).

GAT = Yin et al., ICLR 2020 (MNIST, Appendix C.1 unless noted); keys name the detector configuration of
Table 6 and the attack.
"""


def _by_baseline(rows, baselines, metrics):
    """Unpack ``{attack: (values of metric 1 per baseline, values of metric 2 per baseline, ...)}`` into
    ``{attack: {baseline: {metric: value}}}``."""
    return {attack: {b: dict(zip(metrics, vals)) for b, *vals in zip(baselines, *cols)}
            for attack, cols in rows.items()}


# GAT Table 1 (Adam PGD) and Table 8 (normalised steepest descent): AUC of detectors k = 0, 1.
# attack key: (steps, step size, optimiser)
GAT_TABLE1_8 = {
    "Linf 0.3": {(200, 0.01, "adam"): (0.99959, 0.99971), (2000, 0.005, "adam"): (0.99958, 0.99971),
                 (200, 0.01, "steepest"): (0.99962, 0.99973), (2000, 0.005, "steepest"): (0.99959, 0.99971)},
    "Linf 0.5": {(200, 0.01, "adam"): (0.99830, 0.99869), (2000, 0.005, "adam"): (0.99796, 0.99861),
                 (200, 0.01, "steepest"): (0.99820, 0.99901), (2000, 0.005, "steepest"): (0.99795, 0.99872)},
    "L2 2.5": {(200, 0.1, "adam"): (0.99962, 0.99968), (2000, 0.05, "adam"): (0.99927, 0.99900),
               (200, 0.1, "steepest"): (0.99906, 0.99916), (2000, 0.05, "steepest"): (0.99855, 0.99883)},
    "L2 5.0": {(200, 0.1, "adam"): (0.99578, 0.99987), (2000, 0.05, "adam"): (0.99529, 0.99918),
               (200, 0.1, "steepest"): (0.99960, 0.99997), (2000, 0.05, "steepest"): (0.99237, 0.99994)},
}

# GAT Table 9: cross-norm and cross-perturbation attacks (L-inf: 200 steps of 0.01, L2: 200 steps of 0.1).
# {attack: {detector configuration: (AUC k=0, AUC k=1)}}
GAT_TABLE9 = {
    "Linf 0.3": {"Linf 0.3": (0.99959, 0.99971), "Linf 0.5": (0.99966, 0.99967), "L2 2.5": (0.99927, 0.99949),
                 "L2 5.0": (0.99925, 0.99984)},
    "Linf 0.5": {"Linf 0.3": (0.99436, 0.99778), "Linf 0.5": (0.9983, 0.99869), "L2 2.5": (0.99339, 0.99397),
                 "L2 5.0": (0.99767, 0.99961)},
    "L2 2.5": {"Linf 0.3": (0.99974, 0.99965), "Linf 0.5": (0.99969, 0.99955), "L2 2.5": (0.99962, 0.99968),
               "L2 5.0": (0.99944, 0.99987)},
    "L2 5.0": {"Linf 0.3": (0.96421, 0.98268), "Linf 0.5": (0.98816, 0.98687), "L2 2.5": (0.97747, 0.98117),
               "L2 5.0": (0.99577, 0.99986)},
}

# GAT Table 10: detector k = 0, fixed start vs 50 random restarts (L-inf 0.5 and L2 5.0 trained detectors).
GAT_TABLE10 = {"Linf 0.5": {"fixed start": 0.99830, "random restarts": 0.99776},
               "L2 5.0": {"fixed start": 0.99578, "random restarts": 0.99501}}

# GAT Tables 11 and 12: all ten detectors, 200-step attacks of 0.01 within their training eps.
GAT_TABLE11_12 = {
    "Linf 0.3": (0.99959, 0.99971, 0.99876, 0.99861, 0.99859, 0.99861, 0.99795, 0.99863, 0.99687, 0.99418),
    "Linf 0.5": (0.99830, 0.99869, 0.99327, 0.99355, 0.99314, 0.99228, 0.99424, 0.99439, 0.97875, 0.9769),
}

# GAT Fig 2b: Madry et al.'s robust classifier; reference/original-code-facts.md for the challenge numbers.
GAT_ROBUST_CLASSIFIER = {"accuracy": 0.984, "error eps 0.3": 0.08, "error eps 0.4": 0.941}
MADRY_CHALLENGE_PGD100_ACCURACY = (0.925, 0.930)
# Madry et al.'s MNIST challenge (L-inf 0.3, white-box leaderboard): the best known attack leaves 88.0%.
MADRY_CHALLENGE_BEST_ATTACK_ACCURACY = 0.880
# TRADES' MNIST small CNN (L-inf 0.3, Zhang et al.'s repository): clean, PGD-40 and best known attack.
TRADES_MNIST = {"clean": 0.9948, "PGD-40": 0.9607, "best attack": 0.9246}

# GAT Table 2: mean L2 distortion at 0.95 TPR.
GAT_TABLE2 = {"Carlini & Wagner 2017a (best earlier detector)": 3.68, "GAT, Linf 0.3 detectors": 4.40,
              "GAT, Linf 0.5 detectors": 5.65}

# GAT Table 3 (CIFAR-10, L-inf 8/255 detectors k = 0, 1): AUC by attack (steps, step size on the 0-255 scale;
# L-inf normalised steepest descent, eps 8/255).
GAT_TABLE3_CIFAR = {(20, 2.0): (0.9224, 0.9533), (40, 0.5): (0.9234, 0.9553), (200, 0.1): (0.9231, 0.9550),
                    (200, 0.5): (0.9205, 0.9504), (500, 0.5): (0.9203, 0.9500)}
# GAT Table 17: all ten CIFAR-10 L-inf 8/255 detectors under the 40 x 0.5/255 attack.
GAT_TABLE17_CIFAR = (0.9234, 0.9553, 0.8393, 0.7893, 0.8494, 0.8557, 0.9071, 0.9276, 0.9548, 0.9370)

# GAT Table 18 (CIFAR-10, L-inf 2.0/255 detectors): AUC by training steps/step size (columns) and attack.
GAT_TABLE18 = {"attack 10 x 0.5": {"trained 10 x 0.5": 0.9866, "trained 10 x 1.0": 0.9965},
               "attack 40 x 0.1": {"trained 10 x 0.5": 0.9892, "trained 10 x 1.0": 0.8848}}

# ARCLU Table 2, MNIST half: accuracy, and ASR-1 / EROC per adaptive white-box PGD attack (T: targeted,
# U: untargeted) for each baseline, in the paper's column order.
ARCLU_BASELINES = ("Ours", "L-Ben", "Vanilla", "Resisting", "FS", "LID", "Madry", "TRADES")
ARCLU_TABLE2_ACCURACY = dict(zip(ARCLU_BASELINES, (0.97, 0.97, 0.99, 0.99, 0.97, 0.98, 0.98, 0.99)))
_T2 = {
    "PGD Linf 0.3, T": ((0.00, 0.01, 0.86, 0.72, 0.97, 0.93, 0.01, 0.00), (1.00, 1.00, 0.98, 0.95, 0.36, 0.62, 1.00, 1.00)),
    "PGD Linf 0.3, U": ((0.01, 0.06, 0.86, 0.89, 1.00, 0.98, 0.03, 0.01), (1.00, 0.99, 0.98, 0.94, 0.09, 0.58, 1.00, 1.00)),
    "PGD Linf 0.4, T": ((0.21, 0.50, 0.90, 0.85, 1.00, 0.93, 0.67, 0.73), (0.99, 0.97, 0.98, 0.93, 0.10, 0.63, 0.87, 0.89)),
    "PGD Linf 0.4, U": ((0.51, 0.85, 0.85, 0.95, 1.00, 0.98, 0.94, 0.95), (0.98, 0.89, 0.98, 0.90, 0.01, 0.57, 0.79, 0.88)),
    "PGD L2 2.0, T": ((0.03, 0.06, 0.39, 0.08, 0.51, 0.96, 0.03, 0.01), (1.00, 0.99, 0.98, 1.00, 0.89, 0.59, 1.00, 1.00)),
    "PGD L2 2.0, U": ((0.09, 0.21, 0.75, 0.27, 0.88, 1.00, 0.14, 0.07), (1.00, 0.97, 0.91, 0.99, 0.70, 0.53, 0.99, 0.99)),
    "PGD L1 15, T": ((0.04, 0.05, 0.36, 0.11, 0.46, 0.87, 0.03, 0.07), (1.00, 0.99, 0.99, 1.00, 0.91, 0.61, 1.00, 1.00)),
    "PGD L1 15, U": ((0.19, 0.11, 0.73, 0.37, 0.84, 0.98, 0.11, 0.09), (0.99, 0.99, 0.97, 0.98, 0.72, 0.56, 0.99, 0.99)),
    "PGD L0 25, T": ((0.17, 0.03, 0.61, 0.16, 0.64, 0.81, 0.08, 0.04), (0.99, 0.99, 0.93, 0.99, 0.85, 0.65, 0.99, 1.00)),
    "PGD L0 25, U": ((0.45, 0.12, 0.85, 0.68, 0.93, 0.98, 0.23, 0.19), (0.97, 0.98, 0.82, 0.97, 0.64, 0.54, 0.97, 0.99)),
    "Worst case": ((0.51, 0.85, 0.90, 0.95, 1.00, 1.00, 0.94, 0.95), (0.97, 0.89, 0.82, 0.90, 0.01, 0.53, 0.79, 0.88)),
}
#: attack -> baseline -> {"ASR-1": ..., "EROC": ...}
ARCLU_TABLE2_MNIST = _by_baseline(_T2, ARCLU_BASELINES, ("ASR-1", "EROC"))

# ARCLU Table 2, CIFAR-10 half, the two rows of this book's ARCLU chapter (PGD L-inf 0.03, T and U).
ARCLU_TABLE2_CIFAR_ACCURACY = {"Ours": 0.84, "L-Ben": 0.87}
ARCLU_TABLE2_CIFAR = {
    "PGD Linf 0.03, T": {"Ours": {"ASR-1": 0.19, "EROC": 0.91}, "L-Ben": {"ASR-1": 0.28, "EROC": 0.82}},
    "PGD Linf 0.03, U": {"Ours": {"ASR-1": 0.40, "EROC": 0.69}, "L-Ben": {"ASR-1": 0.55, "EROC": 0.56}},
}

# GAT App. A.2 / reference/original-code-facts.md: test accuracy of the naturally trained CIFAR-10 checkpoint
# the CIFAR-10 detectors start from.
GAT_CIFAR_NATURAL_ACCURACY = 0.9501

# ARCLU Table 3, MNIST half: black-box attacks, ASR-1 / EROC per baseline (paper's column order). The paper's
# decision-based attack is Boundary; this book runs HopSkipJump (its successor, in foolbox) in those rows.
_T3 = {
    "Transfer Linf 0.3": ((0.00, 0.00, 0.01, 0.08, 0.96, 0.84, 0.00, 0.00), (1.00, 0.99, 1.00, 1.00, 0.73, 0.82, 1.00, 1.00)),
    "NES Linf 0.3": ((0.01, 0.05, 0.69, 0.54, 0.75, 0.92, 0.03, 0.01), (1.00, 0.99, 0.76, 0.98, 0.66, 0.69, 1.00, 1.00)),
    "NES L2 2.0": ((0.01, 0.11, 0.60, 0.14, 0.44, 0.93, 0.05, 0.02), (1.00, 0.99, 0.84, 1.00, 0.88, 0.59, 0.99, 1.00)),
    "Boundary Linf 0.3": ((0.00, 0.00, 0.00, 0.00, 0.54, 0.89, 0.00, 0.00), (1.00, 1.00, 1.00, 1.00, 0.96, 0.75, 1.00, 1.00)),
    "Boundary L2 2.0": ((0.00, 0.00, 0.00, 0.00, 0.49, 0.82, 0.00, 0.00), (1.00, 1.00, 1.00, 1.00, 0.96, 0.77, 1.00, 1.00)),
}
#: attack -> baseline -> {"ASR-1": ..., "EROC": ...}
ARCLU_TABLE3_MNIST = _by_baseline(_T3, ARCLU_BASELINES, ("ASR-1", "EROC"))

# ARCLU Table 4, MNIST half: untargeted attacks, ASR-2 / ASR-5 / EROC for four baselines.
_T4_BASELINES = ("Ours", "L-Ben", "Vanilla", "TRADES")
_T4 = {
    "PGD Linf 0.4, U": ((0.32, 0.69, 0.56, 0.89), (0.09, 0.48, 0.01, 0.59), (0.98, 0.88, 0.98, 0.87)),
    "PGD L2 2.0, U": ((0.05, 0.17, 0.58, 0.04), (0.02, 0.09, 0.19, 0.02), (1.00, 0.97, 0.91, 0.99)),
    "PGD L0 25, U": ((0.36, 0.10, 0.68, 0.14), (0.19, 0.04, 0.26, 0.08), (0.97, 0.98, 0.82, 0.99)),
    "CW L2 2.0": ((0.57, 0.17, 0.56, 0.07), (0.43, 0.11, 0.53, 0.03), (0.93, 0.97, 0.78, 0.99)),
    "MIM Linf 0.4": ((0.49, 0.62, 0.76, 0.71), (0.23, 0.42, 0.41, 0.47), (0.96, 0.91, 0.72, 0.92)),
    "FGSM Linf 0.4": ((0.00, 0.01, 0.21, 0.01), (0.00, 0.00, 0.13, 0.00), (1.00, 1.00, 0.94, 1.00)),
    "PGD Linf 1, U": ((1.00, 1.00, 0.56, 0.95), (0.99, 1.00, 0.01, 0.81), (0.40, 0.12, 0.98, 0.53)),
    "PGD L2 6.0, U": ((0.94, 0.90, 0.66, 0.89), (0.85, 0.75, 0.26, 0.72), (0.63, 0.51, 0.76, 0.74)),
}
#: attack -> baseline -> {"ASR-2": ..., "ASR-5": ..., "EROC": ...}
ARCLU_TABLE4_MNIST = _by_baseline(_T4, _T4_BASELINES, ("ASR-2", "ASR-5", "EROC"))


#: ARCLU's names of the baselines (Table 2's columns) for the head-to-head chapter's defences; GAT's two
#: classifiers and MAHA on MNIST have no column there
PAPER_NAMES = {"ARCLU": "Ours", "L-Ben": "L-Ben", "Vanilla": "Vanilla", "Resisting": "Resisting", "FS": "FS", "LID": "LID", "Madry": "Madry",
               "TRADES": "TRADES"}

# The ARCLU repository's own quick MNIST check: untargeted adaptive PGD (Eq. 17) at L-inf 0.3 with the training
# attack's settings (40 sign steps of 0.01), thresholds at 5% false positives.
ARCLU_OWN_CHECK = {"attack": {"norm": "linf", "eps": 0.3, "steps": 40, "step_size": 0.01}, "fpr": 5,
                   "ASR": 0.1228, "EROC": 0.9690}
