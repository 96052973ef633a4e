"""Numbers reported by the papers, for the tables that put ours beside theirs (always labelled as the paper's).

GAT = Yin et al., ICLR 2020 (MNIST, Appendix C.1 unless noted); keys name the detector configuration of
Table 6 and the attack.
"""

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

# GAT Table 2: mean L2 distortion at 0.95 TPR.
GAT_TABLE2 = {"Carlini & Wagner 2017a (best earlier detector)": 3.68, "GAT, Linf 0.3 detectors": 4.40,
              "GAT, Linf 0.5 detectors": 5.65}

# GAT Table 18 (CIFAR-10, L-inf 2.0/255 detectors): AUC by training steps/step size (columns) and attack.
GAT_TABLE18 = {"attack 10 x 0.5": {"trained 10 x 0.5": 0.9866, "trained 10 x 1.0": 0.9965},
               "attack 40 x 0.1": {"trained 10 x 0.5": 0.9892, "trained 10 x 1.0": 0.8848}}
