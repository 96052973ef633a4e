"""advdetect: detecting adversarial examples - GAT and ARCLU reproduced and evaluated head to head.

Three layers (see ARCHITECTURE.md), imported in one direction, book -> methods -> core:

* core: ``attacks`` (the engine), ``objectives`` (every loss and the success criterion), ``defences`` (every
  decision rule behind one interface), ``evaluation`` (thresholds, ASR-p, EROC, the arena), ``blackbox``,
  ``metrics``, ``models``, ``ensemble``, ``data``, ``synthetic``, ``runtime``, ``errors``;
* methods: ``training``, ``gat``, ``arclu``, ``baselines``, ``synthesis``, ``density``, ``embedding``, ``bench``;
* book: ``cache``, ``profiles``, ``artefacts`` (the one cached builder), ``chapters``, ``suite``, ``reports``,
  ``paper``, ``plotting``, ``widgets``, ``executed``, ``verdict``, ``book`` (the build's entry point, not imported by the
  package).

Importing it never touches CUDA: every function takes its device from the model's parameters or from the
tensors it is given.
"""

import os as _os

# Keep torch's OpenMP threads from spinning when the machine is shared (must precede the first torch import).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

from . import (arclu, artefacts, attacks, baselines, bench, blackbox, cache, chapters, data, defences,  # noqa: E402,F401,I001
               density, embedding, ensemble, evaluation, gat, metrics, models, objectives, paper, plotting, profiles,
               reports, runtime, suite, synthesis, synthetic, training, verdict, widgets)
from .errors import AdvDetectError, CacheError, DataError, ProfileError  # noqa: E402,F401
