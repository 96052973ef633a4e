"""Build the book: execute the notebooks of ``_toc.yml`` with papermill, then render HTML with Jupyter Book 1.

    python -m advdetect.book execute [--profile cpu] [--only 00_density_estimation] [--jobs 2] [--force]
    python -m advdetect.book render
    python -m advdetect.book all [--profile cpu] [--jobs 2] [--force]
    python -m advdetect.book times
    python -m advdetect.book aims

``times`` prints how long each committed chapter's last run took (its glued ``chapter_seconds``) and the total;
``aims`` prints the book's aims for model strength (:data:`advdetect.reports.AIMS`) and whether the committed
chapters met each (their glued ``aims_met_*``).

Every ``book/NN_name.ipynb`` entry of ``_toc.yml`` is produced from ``notebooks/NN_name.ipynb`` by papermill,
in the order of the table of contents, with ``PROFILE`` passed as a parameter (and ``ADVDETECT_PROFILE`` set).
With ``--jobs N`` the chapters run N at a time, each in its own process with its share of the cores
(``$ADVDETECT_THREADS``): much of a small CNN's work does not split across threads, so two chapters with one
thread each can finish sooner than one after the other with two (``benchmarks/parallel_chapters.py`` measures
by how much). Chapters share trained models through the artefact cache, whose locks
make a chapter that needs a model another one is training wait for it; :data:`PARALLEL_ORDER` starts the chapters
whose models the others are built from first, and :data:`READS_OTHERS` holds back the verdict chapter, which reads
every other executed chapter, until they have finished. A full build writes its wall-clock time and each chapter's
to ``book/build.json``.

A chapter is executed only when something it depends on changed since its executed copy was made: each executed
copy records a hash (:func:`stamp`) of its source notebook's code cells, the package (code, profiles and shipped
data, :data:`INPUTS`), the pinned requirements, the profile and ``$ADVDETECT_DATA`` - and, for the chapters of
:data:`READS_OTHERS`, the results of the executed chapters they read. A chapter whose hash is unchanged is left
as it is (``--force`` executes it anyway), so a rebuild with nothing changed only renders; where only its prose
changed, the executed copy takes the new prose (:func:`refresh_prose`) and is not executed.

Rendering runs ``jupyter-book build`` with execution off (the executed copies are the book), warnings as errors
and ``--keep-going``, and prints where ``index.html`` is.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml

from . import profiles, runtime
from .executed import glued, repo_root
from .reports import AIMS

NOTEBOOK = re.compile(r"^book/(\d\d_[A-Za-z0-9_]+)(\.ipynb)?$")

#: the longest one cell of a chapter may run before the build stops with an error, per profile (seconds): the
#: net under a hung cell (the cpu profile's longest cell, the attack suite of chapter 05, ran past an hour from an
#: empty cache)
CELL_TIMEOUT = {"smoke": 900, "cpu": 3 * 3600, "paper": 48 * 3600}


#: the order a parallel build starts chapters in (NN prefixes; chapters not named follow in the order of
#: ``_toc.yml``): the motivation chapter trains the classifiers, the Eq. 10 encoder and the L-inf 0.3 detectors
#: that every later chapter starts from; the density chapter needs nothing and fills the other core meanwhile;
#: the cluster chapter (ARCLU, L-Ben and ARCLU's baselines TRADES and Resisting) needs only the motivation
#: chapter's encoder, the GAT chapter its classifiers; the attack chapter needs the cluster chapter's models and
#: only trains what is quick (LID, MAHA); GAT's second chapter needs all of Table 6's detectors
PARALLEL_ORDER = ("01", "00", "04", "02", "03", "06")
#: chapters a parallel build runs alone, with every core, after the chapters of :data:`PARALLEL_ORDER`: the
#: attack suite, which splits its own work across processes (its settings' ``WORKERS``) and is measured alone
RUNS_ALONE = ("05",)
#: chapters that read the executed copies of the chapters before them (a parallel build starts them last)
READS_OTHERS = ("07",)
#: where a full build records its wall-clock time and each chapter's
BUILD_RECORD = "book/build.json"
#: how often a parallel build looks at its running chapters
POLL_SECONDS = 2.0
#: what every chapter's executed copy depends on besides its source notebook (paths from the repository root)
INPUTS = ("src/advdetect", "requirements.txt", "pyproject.toml")
#: files under :data:`INPUTS` that run the chapters without computing anything in them: this module
NOT_INPUTS = ("src/advdetect/book.py",)


def _files(path: Path) -> list[Path]:
    """``path`` itself, or the files under it (caches of compiled Python left out), in a fixed order."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text()).get("cells", [])


def _tags(cell: dict) -> list[str]:
    return list(cell.get("metadata", {}).get("tags", []))


def _text(source) -> str:
    return "".join(source) if isinstance(source, list) else str(source)


def _code(path: Path) -> bytes:
    """What of a source notebook its executed copy depends on: its code cells' sources and tags, not its prose
    (a change of prose alone reaches the executed copy through :func:`refresh_prose`, without executing it)."""
    code = [{"source": _text(c.get("source", "")), "tags": sorted(_tags(c))}
            for c in _cells(path) if c.get("cell_type") == "code"]
    return json.dumps(code, sort_keys=True).encode()


def _results(dst: Path) -> bytes:
    """What another chapter's executed copy gives a chapter that reads it: its stamp and its code cells'
    outputs."""
    outputs = [c.get("outputs", []) for c in _cells(dst) if c.get("cell_type") == "code"]
    return json.dumps({"stamp": executed_stamp(dst), "outputs": outputs}, sort_keys=True).encode()


def stamp(root: Path, src: Path, profile: str) -> str:
    """A hash of what the executed copy of chapter ``src`` depends on: its source notebook's code (:func:`_code`),
    :data:`INPUTS` (but not :data:`NOT_INPUTS`), the profile and ``$ADVDETECT_DATA``; for a chapter of
    :data:`READS_OTHERS`, also every other executed chapter of ``_toc.yml`` (its stamp and outputs)."""
    h = hashlib.sha256(f"profile={profile}\ndata={os.environ.get('ADVDETECT_DATA', '')}\n".encode())
    h.update(str(src.relative_to(root)).encode() + b"\0" + _code(src) + b"\0")
    skip = {root / name for name in NOT_INPUTS}
    for f in (f for name in INPUTS for f in _files(root / name) if f not in skip):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    if src.stem[:2] in READS_OTHERS:
        for other, dst in toc_notebooks(root):
            if other.stem != src.stem and dst.exists():
                h.update(str(dst.relative_to(root)).encode() + b"\0" + _results(dst) + b"\0")
    return h.hexdigest()[:32]


def executed_stamp(dst: Path) -> str | None:
    """The :func:`stamp` recorded in an executed chapter, or None (no copy, or one made without it)."""
    if not dst.exists():
        return None
    return nbformat.read(dst, as_version=4).metadata.get("advdetect", {}).get("stamp")


def _merged(src: Path, dst: Path):
    """The executed copy ``dst`` with the prose (markdown and raw cells) of its source ``src``: the source's cells
    in order, each code cell replaced by the executed one (papermill's injected-parameters cell kept after the
    parameters cell); None where the code cells do not pair up."""
    source, executed = nbformat.read(src, as_version=4), nbformat.read(dst, as_version=4)
    injected = [c for c in executed.cells if "injected-parameters" in _tags(c)]
    code = [c for c in executed.cells if c.cell_type == "code" and "injected-parameters" not in _tags(c)]
    if len(code) != sum(c.cell_type == "code" for c in source.cells):
        return None
    cells, ran = [], iter(code)
    for cell in source.cells:
        if cell.cell_type != "code":
            cells.append(cell)
            continue
        mine = next(ran)
        if _text(mine.source) != _text(cell.source):
            return None
        cells.append(mine)
        if "parameters" in _tags(cell):
            cells.extend(injected)
    executed.cells = cells
    return executed


def up_to_date(root: Path, profile: str, src: Path, dst: Path) -> bool:
    """Whether chapter ``src``'s executed copy ``dst`` was made from exactly what it would be made from now (its
    prose aside)."""
    recorded = executed_stamp(dst)
    return recorded is not None and recorded == stamp(root, src, profile) and _merged(src, dst) is not None


def refresh_prose(src: Path, dst: Path) -> bool:
    """Give the up-to-date executed copy ``dst`` the prose of its source ``src`` (a change of prose needs no
    execution: the glued figures it quotes are in the executed copy); whether anything changed."""
    merged = _merged(src, dst)
    if merged is None:
        raise ValueError(f"{dst} does not pair up with {src}: execute it again (--force)")
    before = [(c.cell_type, _text(c.source)) for c in nbformat.read(dst, as_version=4).cells]
    if before == [(c.cell_type, _text(c.source)) for c in merged.cells]:
        return False
    nbformat.write(merged, dst)
    return True


def _toc_files(node) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        if "file" in node:
            out.append(str(node["file"]))
        for key in ("root", "chapters", "sections", "parts"):
            if key == "root" and key in node:
                out.append(str(node["root"]))
            elif key in node:
                for child in node[key]:
                    out.extend(_toc_files(child))
    elif isinstance(node, list):
        for child in node:
            out.extend(_toc_files(child))
    return out


def toc_notebooks(root: Path) -> list[tuple[Path, Path]]:
    """(source, executed copy) pairs for every notebook chapter of ``_toc.yml``, in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    pairs = []
    for entry in _toc_files(toc):
        m = NOTEBOOK.match(entry)
        if not m:
            continue
        name = m.group(1)
        src = root / "notebooks" / f"{name}.ipynb"
        if not src.is_file():
            raise SystemExit(f"_toc.yml lists {entry} but its source {src} does not exist")
        pairs.append((src, root / "book" / f"{name}.ipynb"))
    return pairs


def _chapters(root: Path, only: list[str] | None) -> list[tuple[Path, Path]]:
    pairs = toc_notebooks(root)
    if only:
        pairs = [p for p in pairs if p[0].stem in only or p[0].stem[:2] in only]
        if not pairs:
            raise SystemExit(f"--only {only} matches no notebook of _toc.yml")
    return pairs


def execute(root: Path, profile: str, only: list[str] | None = None, cell_timeout: int | None = None,
            jobs: int = 1, force: bool = False) -> None:
    """Execute the chapters of ``_toc.yml`` (or those named in ``only``) at ``profile``, ``jobs`` at a time; a
    chapter whose executed copy is up to date (:func:`up_to_date`) is left as it is unless ``force``."""
    profiles.check(profile)
    if jobs < 1:
        raise SystemExit(f"--jobs must be at least 1, got {jobs}")
    pairs = _chapters(root, only)
    started = time.time()
    if jobs == 1 or len(pairs) == 1:
        seconds = {src.stem: execute_one(root, profile, src, dst, cell_timeout, force) for src, dst in pairs}
    else:
        seconds = execute_parallel(root, profile, pairs, cell_timeout, jobs, force)
    wall = time.time() - started
    kept = [name for name, s in seconds.items() if s is None]
    if len(pairs) > 1:
        print(f"[book] {len(pairs) - len(kept)} of {len(pairs)} chapters executed in {wall / 60:.1f} min "
              f"({jobs} at a time)" + (f"; {len(kept)} up to date" if kept else ""), flush=True)
    if len(pairs) == len(toc_notebooks(root)):
        if len(kept) == len(pairs):
            print(f"[book] every chapter is up to date: nothing executed, {BUILD_RECORD} kept as it is", flush=True)
        else:
            record_build(root, profile, jobs, wall, seconds)


def _kept(root: Path, profile: str, src: Path, dst: Path, force: bool) -> bool:
    """Whether to leave chapter ``src`` as it is (up to date and not ``force``d), saying so."""
    if force or not up_to_date(root, profile, src, dst):
        return False
    print(f"[book] {dst.relative_to(root)} is up to date (its notebook's code, the package, the requirements and "
          f"the profile {profile} are those of its last run): not executed; --force executes it", flush=True)
    if refresh_prose(src, dst):
        print(f"[book] {dst.relative_to(root)}: its prose taken from {src.relative_to(root)}", flush=True)
    return True


def execute_one(root: Path, profile: str, src: Path, dst: Path, cell_timeout: int | None = None,
                force: bool = False) -> float | None:
    """Execute one chapter in a papermill kernel, and record in the executed copy the :func:`stamp` of what it
    was made from; return its wall-clock seconds, or None where it was up to date and not ``force``d."""
    import papermill as pm

    if _kept(root, profile, src, dst, force):
        return None
    made_from = stamp(root, src, profile)
    os.environ[profiles.ENV_VAR] = profile
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are for people; the book shows results
    os.environ.setdefault("ADVDETECT_HEADLESS", "1")
    start = time.time()
    print(f"[book] executing {src.relative_to(root)} at profile {profile} -> {dst.relative_to(root)}", flush=True)
    run_chapter(lambda: pm.execute_notebook(
        str(src), str(dst), parameters={"PROFILE": profile}, cwd=str(src.parent), kernel_name="python3",
        progress_bar=False, request_save_on_cell_execute=False,
        execution_timeout=cell_timeout or CELL_TIMEOUT[profile]), src.stem)
    hide_parameters(dst, stamp=made_from)
    seconds = time.time() - start
    print(f"[book] {dst.name}: {seconds:.0f} s", flush=True)
    return seconds


def parallel_order(names: list[str]) -> list[str]:
    """``names`` (chapter stems, in the order of ``_toc.yml``) in the order a parallel build starts them:
    :data:`PARALLEL_ORDER` first, then the others in their order, then those of :data:`RUNS_ALONE`, the chapters
    of :data:`READS_OTHERS` last."""
    def rank(name: str) -> tuple[int, int]:
        prefix = name[:2]
        if prefix in READS_OTHERS:
            return (3, names.index(name))
        if prefix in RUNS_ALONE:
            return (2, names.index(name))
        if prefix in PARALLEL_ORDER:
            return (0, PARALLEL_ORDER.index(prefix))
        return (1, names.index(name))
    return sorted(names, key=rank)


def execute_parallel(root: Path, profile: str, pairs: list[tuple[Path, Path]], cell_timeout: int | None,
                     jobs: int, force: bool = False) -> dict[str, float | None]:
    """Execute ``pairs`` ``jobs`` at a time, each chapter in its own ``python -m advdetect.book execute`` process
    with ``cores // jobs`` threads - a chapter of :data:`RUNS_ALONE` with every core, when nothing else runs and
    with nothing beside it; stop every other chapter and the build when one fails. A chapter up to date when its
    turn comes (the verdict's turn comes after the chapters it reads) is not started (None) unless ``force``."""
    chapter = {src.stem: (src, dst) for src, dst in pairs}
    queue = parallel_order([src.stem for src, _ in pairs])
    cores = runtime.available_cores()
    threads = max(1, cores // jobs)

    def env(n: int) -> dict:
        return dict(os.environ, **{runtime.THREADS_VAR: str(n), "OMP_NUM_THREADS": str(n), "NUMBA_NUM_THREADS": str(n)})

    alone = [n for n in queue if n[:2] in RUNS_ALONE]
    print(f"[book] {len(queue)} chapters, {jobs} at a time with {threads} thread{'s' if threads > 1 else ''} "
          f"each: {', '.join(queue)}" + (f" ({', '.join(alone)} alone with {cores})" if alone else ""), flush=True)
    running: dict[str, tuple[subprocess.Popen, float]] = {}
    seconds: dict[str, float | None] = {}

    def may_start(name: str) -> bool:
        if len(running) >= jobs or any(r[:2] in RUNS_ALONE for r in running):
            return False
        return not (running and (name[:2] in READS_OTHERS or name[:2] in RUNS_ALONE))

    while queue or running:
        while queue and may_start(queue[0]):
            name = queue.pop(0)
            if _kept(root, profile, *chapter[name], force):
                seconds[name] = None
                continue
            cmd = [sys.executable, "-m", "advdetect.book", "execute", "--profile", profile, "--only", name,
                   "--force"]
            if cell_timeout:
                cmd += ["--cell-timeout", str(cell_timeout)]
            n = cores if name[:2] in RUNS_ALONE else threads
            running[name] = (subprocess.Popen(cmd, cwd=root, env=env(n)), time.time())
        time.sleep(POLL_SECONDS)
        for name, (proc, start) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[name]
            if proc.returncode != 0:
                for other, _ in running.values():
                    other.terminate()
                for other, _ in running.values():
                    other.wait()
                raise SystemExit(f"[book] {name} failed (exit status {proc.returncode}; its error is above); "
                                 f"stopped {', '.join(running) or 'nothing else'}"
                                 + (f" and did not start {', '.join(queue)}" if queue else ""))
            seconds[name] = time.time() - start
    return seconds


def record_build(root: Path, profile: str, jobs: int, wall: float, seconds: dict[str, float | None]) -> None:
    """Write :data:`BUILD_RECORD`: when and how the whole book was last executed, how long it took, and which
    chapters were up to date and left as they were (None in ``seconds``)."""
    record = {"profile": profile, "jobs": jobs, "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "hardware": runtime.hardware(), "wall_seconds": round(wall),
              "chapters": {name: round(s) for name, s in seconds.items() if s is not None},
              "up_to_date": [name for name, s in seconds.items() if s is None]}
    path = root / BUILD_RECORD
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"[book] recorded the build in {path.relative_to(root)}", flush=True)


def run_chapter(execute_once, name: str, attempts: int = 2) -> None:
    """Run ``execute_once`` (one papermill execution of chapter ``name``). A kernel that died, or a cell that ran
    past the cell timeout (its total run time, not a time without output), is restarted with the chapter, once; a failing cell stops the build
    with the chapter's name, the cell and the error."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    for attempt in range(1, attempts + 1):
        try:
            execute_once()
            return
        except PapermillExecutionError as e:
            raise SystemExit(f"[book] {name} failed in cell {e.cell_index} (execution count {e.exec_count}): "
                             f"{e.ename}: {e.evalue}") from e
        except (DeadKernelError, CellTimeoutError) as e:
            kind = "the kernel died" if isinstance(e, DeadKernelError) else "a cell ran past the cell timeout"
            if attempt == attempts:
                raise SystemExit(f"[book] {name}: {kind} again after a restart: {e}") from e
            print(f"[book] {name}: {kind} ({type(e).__name__}); restarting the chapter", flush=True)


def hide_parameters(path: Path, stamp: str | None = None) -> None:
    """Tag the parameters cell and papermill's injected-parameters cell of an executed chapter ``remove-cell``:
    they stay in the notebook (papermill and JupyterLab read them) but not in the rendered book, whose settings
    block says what differs from the paper. With ``stamp``, record it (:func:`stamp`) in the notebook's
    metadata."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if {"parameters", "injected-parameters"} & set(tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
    if stamp is not None:
        nb.metadata["advdetect"] = {"stamp": stamp}
    nbformat.write(nb, path)


def render(root: Path) -> Path:
    jb = shutil.which("jupyter-book") or str(Path(sys.executable).with_name("jupyter-book"))
    cmd = [jb, "build", str(root), "--warningiserror", "--keep-going"]
    print("[book] " + " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    index = root / "_build" / "html" / "index.html"
    print(f"[book] the book is at {index}", flush=True)
    return index


def chapter_times(root: Path) -> list[tuple[str, float | None]]:
    """Each chapter of ``_toc.yml`` with the run time its executed copy glued (``chapter_seconds``), or None
    where the copy is missing or glued none."""
    out = []
    for _, dst in toc_notebooks(root):
        seconds = glued(dst).get("chapter_seconds") if dst.exists() else None
        out.append((dst.stem, float(seconds) if isinstance(seconds, (int, float)) else None))
    return out


def print_times(root: Path) -> None:
    rows = chapter_times(root)
    for name, seconds in rows:
        print(f"{name:<40} " + ("not executed" if seconds is None else f"{seconds / 60:6.1f} min"))
    known = [s for _, s in rows if s is not None]
    missing = len(rows) - len(known)
    print(f"{'total':<40} {sum(known) / 60:6.1f} min" +
          ("" if not missing else f" ({missing} chapter{'s' if missing > 1 else ''} without a time)"))
    record = root / BUILD_RECORD
    if record.is_file():
        b = json.loads(record.read_text())
        kept = b.get("up_to_date", [])
        print(f"last full build: {b['wall_seconds'] / 60:.1f} min of wall clock at profile {b['profile']}, "
              f"{b['jobs']} chapter{'s' if b['jobs'] > 1 else ''} at a time, finished {b['finished']} "
              f"({b['hardware']})" + (f"; up to date, not executed: {', '.join(kept)}" if kept else ""))


def aims_status(root: Path) -> list[tuple[str, str, str, str]]:
    """Each aim of :data:`advdetect.reports.AIMS`: (name, the bound, ``met`` / ``missed`` / ``not measured``, the
    committed chapter that measured it), read from the ``aims_met_*`` dicts the chapters glue."""
    found: dict[str, tuple[bool, str]] = {}
    for _, dst in toc_notebooks(root):
        if not dst.exists():
            continue
        for name, value in glued(dst).items():
            if name.startswith("aims_met") and isinstance(value, dict):
                found.update({str(k): (bool(v), dst.stem) for k, v in value.items()})
    rows = []
    for name, aim in AIMS.items():
        op, bound = aim if isinstance(aim, tuple) else (">=", aim)
        met, chapter = found.get(name, (None, "-"))
        rows.append((name, f"{op} {bound:g}", "not measured" if met is None else "met" if met else "missed", chapter))
    return rows


def print_aims(root: Path) -> None:
    for name, bound, status, chapter in aims_status(root):
        print(f"{name:<36} {bound:<9} {status:<13} {chapter}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m advdetect.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["execute", "render", "all", "times", "aims"])
    parser.add_argument("--profile", default=os.environ.get(profiles.ENV_VAR, profiles.DEFAULT_PROFILE),
                        help=f"one of {', '.join(profiles.PROFILES)} (default: $ADVDETECT_PROFILE or cpu)")
    parser.add_argument("--only", nargs="*", help="notebook names (or NN prefixes) to execute")
    parser.add_argument("--jobs", type=int, default=1,
                        help="chapters to execute at once, each in its own process with its share of the cores "
                             "(default 1; benchmarks/parallel_chapters.py measures what 2 gains)")
    parser.add_argument("--force", action="store_true",
                        help="execute the chapters even where their executed copies are up to date")
    parser.add_argument("--cell-timeout", type=int, default=None,
                        help="seconds one cell may run before the build fails (default by profile: "
                             + ", ".join(f"{k} {v}" for k, v in CELL_TIMEOUT.items()) + ")")
    args = parser.parse_args(argv)
    root = repo_root()
    if args.command == "times":
        print_times(root)
        return
    if args.command == "aims":
        print_aims(root)
        return
    if args.command in ("execute", "all"):
        execute(root, args.profile, args.only, args.cell_timeout, args.jobs, args.force)
    if args.command in ("render", "all"):
        render(root)


if __name__ == "__main__":
    main()
