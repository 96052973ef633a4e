"""The artefact cache: trained models and long results on disk, keyed by a hash of their configuration.

Layout: ``<root>/<kind>/<key>/`` holds ``config.json`` (readable record) and one ``<name>.pt`` file per saved
object, e.g. ``checkpoint.pt`` (rewritten after every epoch, so training resumes after an interruption) and
``final.pt``. Files are written atomically (temporary file + rename) and read with
``torch.load(..., weights_only=True)``: only tensors and plain Python containers and numbers, never pickled
code. Every file embeds its configuration; a file that does not unpickle, or whose configuration differs from
the one asked for, raises :class:`~advdetect.errors.CacheError` with the path to delete.

Several processes may share one cache (the book's chapters executed in parallel): :meth:`Entry.lock` holds an
exclusive lock on ``<root>/<kind>/<key>/.lock`` while an artefact is computed, so a second process that asks for
the same artefact waits for the first and then loads its result instead of computing it again.

The root is ``$ADVDETECT_CACHE`` if set, else ``.cache/advdetect`` in the project's checkout (found from the
editable install), else ``~/.cache/advdetect``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from .errors import CacheError

ENV_VAR = "ADVDETECT_CACHE"
#: bumped when a change of the code makes older artefacts invalid
SCHEMA = 2


def project_root() -> Path | None:
    """The checkout this package was installed from in editable mode, if any."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file() and (parent / "src" / "advdetect").is_dir():
            return parent
    return None


def default_root() -> Path:
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    root = project_root()
    if root is not None:
        return root / ".cache" / "advdetect"
    return Path.home() / ".cache" / "advdetect"


def _canonical(config: Mapping[str, Any]) -> str:
    def conv(v: Any) -> Any:
        if isinstance(v, Mapping):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        if isinstance(v, float):
            return float(f"{v:.12g}")
        if isinstance(v, (str, int, bool)) or v is None:
            return v
        raise TypeError(f"cache configurations hold plain values only, got {type(v).__name__}: {v!r}")

    return json.dumps(conv(dict(config)), sort_keys=True, separators=(",", ":"))


def fingerprint(t: torch.Tensor) -> str:
    """A tensor's identity in a cache key: a hash of its dtype, shape and bytes (so another order or other
    values give another key)."""
    t = t.detach().cpu().contiguous()
    h = hashlib.sha256(f"{t.dtype}|{tuple(t.shape)}|".encode())
    h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:24]


def identity(module: torch.nn.Module) -> str:
    """A module's identity in a cache key: a hash of its class and of every entry of its state dict (names,
    dtypes, shapes, bytes) - two models with the same configuration but other weights differ."""
    h = hashlib.sha256(type(module).__name__.encode())
    for name, t in module.state_dict().items():
        h.update(f"|{name}|".encode())
        h.update(fingerprint(t).encode() if isinstance(t, torch.Tensor) else repr(t).encode())
    return h.hexdigest()[:24]


def config_key(kind: str, config: Mapping[str, Any]) -> str:
    """The hash that names an artefact: kind, schema version and configuration."""
    text = f"{kind}|{SCHEMA}|{_canonical(config)}"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class Entry:
    """One cached artefact: a folder of named objects sharing one configuration."""

    def __init__(self, root: Path, kind: str, config: Mapping[str, Any]):
        self.kind = kind
        self.config = json.loads(_canonical(config))
        self.key = config_key(kind, config)
        self.dir = Path(root) / kind / self.key

    def __repr__(self) -> str:
        return f"Entry({self.kind}, {self.dir})"

    def path(self, name: str) -> Path:
        return self.dir / f"{name}.pt"

    def exists(self, name: str = "final") -> bool:
        return self.path(name).is_file()

    def save(self, name: str, obj: Mapping[str, Any]) -> Path:
        """Write ``obj`` (tensors, numbers, strings and containers of them) atomically under ``name``."""
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "config.json"
        if not cfg.exists():
            cfg.write_text(json.dumps({"kind": self.kind, "schema": SCHEMA, "config": self.config}, indent=2))
        target = self.path(name)
        tmp = target.with_suffix(".pt.tmp")
        torch.save({"__kind__": self.kind, "__schema__": SCHEMA, "__config__": self.config, "payload": dict(obj)}, tmp)
        os.replace(tmp, target)
        return target

    def load(self, name: str = "final", map_location: str | torch.device = "cpu") -> dict[str, Any]:
        """Read the object saved under ``name``; raise :class:`CacheError` if it is corrupt or mismatched."""
        target = self.path(name)
        if not target.is_file():
            raise CacheError(f"no cached {self.kind} artefact {name!r} at {target}")
        try:
            blob = torch.load(target, map_location=map_location, weights_only=True)
        except Exception as exc:  # noqa: BLE001 - any failure to unpickle means the file is unusable
            raise CacheError(
                f"cached artefact {target} cannot be read ({type(exc).__name__}: {exc}). It is corrupt or was "
                f"written by an incompatible version: delete the folder {self.dir} to recompute it."
            ) from exc
        if not isinstance(blob, dict) or "payload" not in blob:
            raise CacheError(f"cached artefact {target} is not an advdetect artefact: delete {self.dir}")
        if blob.get("__kind__") != self.kind or blob.get("__schema__") != SCHEMA or blob.get("__config__") != self.config:
            raise CacheError(
                f"cached artefact {target} was written for a different configuration "
                f"({blob.get('__kind__')}, schema {blob.get('__schema__')}) than the one asked for: "
                f"delete the folder {self.dir} to recompute it."
            )
        return blob["payload"]

    def memo(self, name: str, compute: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
        """The object saved under ``name``, or ``compute()``'s result saved there first. The computation holds
        :meth:`lock`, so a process that waited on another's computation reads its result instead of repeating it."""
        if self.exists(name):
            return self.load(name)
        with self.lock():
            if self.exists(name):  # another process computed it while this one waited
                return self.load(name)
            result = dict(compute())
            self.save(name, result)
        return result

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    @contextlib.contextmanager
    def lock(self):
        """Hold this artefact's inter-process lock (``fcntl.flock`` on ``<kind>/<key>/.lock``, released when the
        block ends or the process dies). Locks nest only along dependencies (an artefact's computation asks for
        the artefacts it is built from), so two processes cannot wait on each other."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / ".lock"
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class ArtefactCache:
    """Factory of :class:`Entry` objects under one root folder."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()

    def __repr__(self) -> str:
        return f"ArtefactCache({self.root})"

    def entry(self, kind: str, config: Mapping[str, Any]) -> Entry:
        return Entry(self.root, kind, config)

    def memo(self, kind: str, config: Mapping[str, Any], compute: Callable[[], Mapping[str, Any]]) -> dict[str, Any]:
        """Return the cached result of ``compute()`` for this configuration, computing and saving it once."""
        return self.entry(kind, config).memo("result", compute)
