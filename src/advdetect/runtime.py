"""Devices, seeds, threads and the provenance line every chapter opens with."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import random

import numpy as np
import torch
from tqdm.auto import tqdm

from . import __version__


def headless() -> bool:
    """True when running unattended (the book build, CI): ``ADVDETECT_HEADLESS`` or ``TQDM_DISABLE`` is set."""
    return any(os.environ.get(v, "") not in ("", "0", "false", "False") for v in ("ADVDETECT_HEADLESS", "TQDM_DISABLE"))


def progress_bar(iterable, *, enabled: bool = True, **kwargs):
    """A ``tqdm.auto`` progress bar, silent when not ``enabled`` or when running headless."""
    return tqdm(iterable, disable=(not enabled) or headless(), **kwargs)


def best_device() -> torch.device:
    """CUDA when a GPU is visible, else the CPU. Called by notebooks when they build a model, never at import."""
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def device_of(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module with neither)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded the same, for explicit use."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


#: environment variable that caps the threads of :func:`configure_threads` (the book sets it when it executes
#: several chapters at once, so that they share the cores instead of fighting over them)
THREADS_VAR = "ADVDETECT_THREADS"


def available_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def configure_threads() -> int:
    """Use every core the process may run on (torch's default can be lower in containers), or
    ``$ADVDETECT_THREADS`` of them when that is set; return the count."""
    n = available_cores()
    cap = os.environ.get(THREADS_VAR, "").strip()
    if cap:
        if not cap.isdigit() or int(cap) < 1:
            raise ValueError(f"${THREADS_VAR} must be a positive whole number of threads, got {cap!r}")
        n = min(n, int(cap))
    torch.set_num_threads(max(1, n))
    return n


def hardware(device: torch.device | str | None = None) -> str:
    """A one-line description of the hardware a result was computed on."""
    device = torch.device(device) if device is not None else best_device()
    if device.type == "cuda":
        return f"GPU {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    n = torch.get_num_threads()
    shared = (f" of {available_cores()} cores, beside other chapters" if os.environ.get(THREADS_VAR)
              and n < available_cores() else "")
    return f"CPU, {n} thread{'s' if n != 1 else ''}{shared} ({cpu})"


def provenance(profile: str, dataset: str, device: torch.device | str | None = None) -> str:
    """The chapter's provenance line: profile, dataset, device and versions, as Markdown."""
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"**Run:** profile `{profile}` · data {dataset} · {hardware(device)} · "
        f"advdetect {__version__}, torch {torch.__version__}, Python {platform.python_version()} · {when}"
    )


def freeze(model):
    """Evaluation mode and no parameter gradients: a trained model that is only evaluated or attacked."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


#: the arithmetic a training loop or an attack may run its forward passes in: ``fp32`` (everything in float32) or
#: ``bf16`` (autocast: convolutions and matrix products in bfloat16; the weights, their updates and an attack's
#: input gradients in float32)
PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of :data:`PRECISIONS`, else a ValueError naming them (a training loop or an
    attack calls this before its first step)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def autocast(device: torch.device, precision: str = "fp32"):
    """A context in which forward passes run at ``precision`` (one of :data:`PRECISIONS`) on ``device``."""
    if check_precision(precision) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
