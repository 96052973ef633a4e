"""advdetect: detecting adversarial examples - GAT and ARCLU reproduced and evaluated head to head.

The package holds every piece of logic of the book; the notebooks narrate, set parameters and call it.
Importing it never touches CUDA: every function takes its device from the model's parameters or from the
tensors it is given.
"""

import os as _os

# Keep torch's OpenMP threads from spinning when the machine is shared (must precede the first torch import).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from . import arclu, attacks, bench, cache, data, defences, density, embedding, ensemble, gat, losses, metrics, models, paper, plotting, profiles, runtime, suite, synthesis, synthetic, training, widgets  # noqa: E402,F401,I001
from .errors import AdvDetectError, CacheError, DataError, ProfileError  # noqa: E402,F401
