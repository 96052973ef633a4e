import subprocess
import sys
import time

import pytest
import torch

from advdetect import cache as cache_mod
from advdetect.errors import CacheError
from advdetect.models import MLP
from advdetect.training import fit


def test_roundtrip_and_key_depends_on_configuration(tmp_path):
    c = cache_mod.ArtefactCache(tmp_path)
    e = c.entry("thing", {"a": 1, "b": [1, 2]})
    e.save("final", {"w": torch.arange(3), "history": [{"loss": 0.5}]})
    assert torch.equal(c.entry("thing", {"b": [1, 2], "a": 1}).load()["w"], torch.arange(3))
    assert c.entry("thing", {"a": 2, "b": [1, 2]}).key != e.key
    assert (e.dir / "config.json").is_file()


def test_corrupt_file_gives_a_clear_error(tmp_path):
    e = cache_mod.ArtefactCache(tmp_path).entry("thing", {"a": 1})
    e.save("final", {"w": torch.zeros(2)})
    e.path("final").write_bytes(b"not a checkpoint")
    with pytest.raises(CacheError, match="corrupt.*delete the folder"):
        e.load()


def test_mismatched_configuration_gives_a_clear_error(tmp_path):
    c = cache_mod.ArtefactCache(tmp_path)
    a, b = c.entry("thing", {"a": 1}), c.entry("thing", {"a": 2})
    a.save("final", {"w": torch.zeros(2)})
    b.dir.mkdir(parents=True)
    b.path("final").write_bytes(a.path("final").read_bytes())  # a file copied into the wrong folder
    with pytest.raises(CacheError, match="different configuration"):
        b.load()


def test_only_plain_values_in_configurations(tmp_path):
    with pytest.raises(TypeError, match="plain values"):
        cache_mod.ArtefactCache(tmp_path).entry("thing", {"a": object()})


def test_fingerprint_tells_order_values_dtype_and_shape_apart():
    x = torch.arange(12.0).view(4, 3)
    assert cache_mod.fingerprint(x) == cache_mod.fingerprint(x.clone())
    perm = x[torch.tensor([1, 0, 2, 3])]                  # the same rows in another order: same length and sum
    assert perm.sum() == x.sum() and cache_mod.fingerprint(perm) != cache_mod.fingerprint(x)
    swapped = x.clone()
    swapped[0, 0], swapped[0, 1] = 1.0, 0.0              # other values with the same sum
    assert cache_mod.fingerprint(swapped) != cache_mod.fingerprint(x)
    assert cache_mod.fingerprint(x.long()) != cache_mod.fingerprint(x)
    assert cache_mod.fingerprint(x.view(3, 4)) != cache_mod.fingerprint(x)
    y = torch.tensor([3, 1, 2])
    assert cache_mod.fingerprint(y) != cache_mod.fingerprint(y.flip(0))   # labels: formerly keyed by their sum


def test_cached_attacks_are_keyed_by_the_images_order_and_the_model_weights(tmp_path):
    from advdetect import artefacts
    from advdetect.defences import ClassifierDefence

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    net.num_outputs = 3
    c = cache_mod.ArtefactCache(tmp_path)
    x, y = torch.rand(5, 1, 2, 2), torch.tensor([0, 1, 2, 0, 1])
    engine = dict(norm="linf", eps=0.3, steps=3, step_size=0.1)
    first = artefacts.attack_examples(c, ClassifierDefence("a", net), "margin", x, y, engine)
    assert torch.equal(first, artefacts.attack_examples(c, ClassifierDefence("b", net), "margin", x, y, engine))
    assert len(list((tmp_path / "attack").iterdir())) == 1                # the same weights: read back
    order = torch.tensor([4, 3, 2, 1, 0])
    permuted = artefacts.attack_examples(c, ClassifierDefence("a", net), "margin", x[order], y[order], engine)
    assert len(list((tmp_path / "attack").iterdir())) == 2 and torch.allclose(permuted, first[order])
    other = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))   # same configuration, other weights
    other.num_outputs = 3
    artefacts.attack_examples(c, ClassifierDefence("a", other), "margin", x, y, engine)
    assert len(list((tmp_path / "attack").iterdir())) == 3
    assert cache_mod.identity(net) != cache_mod.identity(other)


def test_memo_computes_once(tmp_path):
    calls = []
    c = cache_mod.ArtefactCache(tmp_path)
    f = lambda: calls.append(1) or {"x": torch.ones(1)}  # noqa: E731
    c.memo("r", {"k": 1}, f)
    c.memo("r", {"k": 1}, f)
    assert len(calls) == 1


def test_an_entry_memo_saves_each_named_object_once_and_reads_it_back(tmp_path):
    entry = cache_mod.ArtefactCache(tmp_path).entry("fit", {"k": 1})
    calls = []
    first = entry.memo("final", lambda: calls.append(1) or {"w": torch.arange(3.0)})
    again = entry.memo("final", lambda: calls.append(1) or {"w": torch.zeros(3)})
    other = entry.memo("other", lambda: calls.append(1) or {"w": torch.ones(1)})
    assert len(calls) == 2 and torch.equal(again["w"], first["w"]) and torch.equal(other["w"], torch.ones(1))
    entry.path("final").write_bytes(b"not a torch file")
    with pytest.raises(CacheError, match="delete the folder"):
        entry.memo("final", lambda: {"w": torch.zeros(3)})


def test_a_second_process_waits_for_the_artefact_being_computed_and_loads_it(tmp_path):
    c = cache_mod.ArtefactCache(tmp_path)
    entry = c.entry("r", {"k": 1})
    script = ("import sys\nfrom advdetect.cache import ArtefactCache\n"
              f"c = ArtefactCache({str(tmp_path)!r})\nprint('ready', flush=True)\n"
              "r = c.memo('r', {'k': 1}, lambda: sys.exit('computed a second time'))\nprint(int(r['x']))\n")
    with entry.lock():  # this process is computing the artefact
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.5)  # without the lock the other process would compute (and exit) meanwhile
        assert proc.poll() is None
        entry.save("result", {"x": torch.tensor(7)})
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.strip() == "7"


class Interrupt(Exception):
    pass


def _run(entry, epochs, stop_at=None, seen=None):
    torch.manual_seed(0)
    model = MLP(2, (4,), 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.randn(16, 2)

    def epoch_fn(epoch):
        if stop_at is not None and epoch == stop_at:
            raise Interrupt
        if seen is not None:
            seen.append(epoch)
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return {"loss": float(loss.detach())}

    return model, fit(entry, model, opt, epoch_fn, epochs, progress=False)


def test_training_resumes_from_the_last_completed_epoch(tmp_path):
    c = cache_mod.ArtefactCache(tmp_path)
    ref_model, ref_hist = _run(c.entry("m", {"run": "reference"}), 5)
    e = c.entry("m", {"run": "interrupted"})
    with pytest.raises(Interrupt):
        _run(e, 5, stop_at=3)
    assert e.exists("checkpoint") and not e.exists("final") and e.load("checkpoint")["epoch"] == 3
    seen = []
    model, hist = _run(e, 5, seen=seen)
    assert seen == [3, 4] and [h["epoch"] for h in hist] == [1, 2, 3, 4, 5]
    assert [h["loss"] for h in hist] == pytest.approx([h["loss"] for h in ref_hist])
    for p, q in zip(model.parameters(), ref_model.parameters()):
        assert torch.allclose(p, q)
    seen2 = []
    _run(e, 5, seen=seen2)
    assert seen2 == [] and not e.exists("checkpoint")


def test_training_that_another_process_finished_meanwhile_is_loaded_not_repeated(tmp_path):
    c = cache_mod.ArtefactCache(tmp_path)
    elsewhere = c.entry("m", {"run": "elsewhere"})
    other_model, other_hist = _run(elsewhere, 3)

    class Racing(cache_mod.Entry):
        def lock(self):  # the other process saves its model while this one waits for the lock
            self.save("final", elsewhere.load("final"))
            return super().lock()

    seen = []
    model, hist = _run(Racing(tmp_path, "m", {"run": "here"}), 3, seen=seen)
    assert seen == [] and hist == other_hist
    for p, q in zip(model.parameters(), other_model.parameters()):
        assert torch.equal(p, q)
