"""NNI 3.0 model spaces as searchkd spaces (searchkd/spaces/nni_space.py)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nni.nas.nn.pytorch")

import torch  # noqa: E402

from searchkd.errors import SearchKDError  # noqa: E402
from searchkd.spaces import count_cost, get_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "nni_spaces.py"
TINY = f"nni:{ROOT / 'examples' / 'nni_space.py'}:TinySpace"
NESTED = f"nni:{HERE}:NestedSpace"

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return get_space(TINY)


@pytest.fixture(scope="module")
def nested():
    return get_space(NESTED)


def full_samples(space):
    """Every assignment of every label (inactive ones included), as NNI sees the space."""
    for values in itertools.product(*(space.values[k] for k in space.labels)):
        yield dict(zip(space.labels, values))


def structure(model: torch.nn.Module) -> list[tuple[str, str, tuple]]:
    return [(n, type(m).__name__, tuple(p.shape for p in m.parameters(recurse=False))) for n, m in model.named_modules()]


def test_sample_is_canonical_json_seeded_and_round_trips(tiny):
    a = tiny.sample(np.random.default_rng(3))
    assert tiny.sample(np.random.default_rng(3)) == a
    assert len({tiny.sample(np.random.default_rng(s)) for s in range(20)}) > 5
    for s in range(30):
        a = tiny.sample(s)
        d = json.loads(a)
        assert list(d) == sorted(d) and " " not in a and tiny.validate(a) == a
        assert len(d) == d["depth"] + 2  # depth, width and one op per block: the active labels only
    # any key order and spacing is canonicalised
    assert tiny.validate('{ "width": 8, "op0": "skip", "depth": 1 }') == '{"depth":1,"op0":"skip","width":8}'


def test_validate_drops_inactive_labels_and_refuses_bad_archs(tiny):
    # a full NNI sample: op2 does not exist at depth 2, so it is dropped
    full = '{"depth":2,"op0":"skip","op1":"conv1x1","op2":"conv3x3","width":16}'
    assert tiny.validate(full) == '{"depth":2,"op0":"skip","op1":"conv1x1","width":16}'
    for bad, match in [('{"depth":2,"op0":"skip","width":8}', "lacks label 'op1'"),
                       ('{"depth":1,"op0":"skip","width":8,"kernel":3}', "unknown label 'kernel'"),
                       ('{"depth":4,"op0":"skip","width":8}', "not a value of 'depth'"),
                       ('{"depth":1,"op0":"conv7x7","width":8}', "not a value of 'op0'"),
                       ("depth=1", "malformed arch"), ("[1, 2]", "malformed arch")]:
        with pytest.raises(SearchKDError, match=match):
            tiny.validate(bad)
    with pytest.raises(SearchKDError, match="JSON string"):
        tiny.validate({"depth": 1})


def test_mutate_changes_one_label_and_repairs_only_the_dependents(tiny):
    rng = np.random.default_rng(0)
    depth_moves = 0
    for _ in range(60):
        a = tiny.sample(rng)
        b = tiny.mutate(a, rng)
        assert b != a and tiny.validate(b) == b
        da, db = json.loads(a), json.loads(b)
        changed = [k for k in da if k in db and da[k] != db[k]]
        assert len(changed) == 1
        if changed != ["depth"]:
            assert set(da) == set(db)
        else:  # the blocks a new depth adds are drawn, those it removes dropped
            depth_moves += 1
            assert set(db) == {"depth", "width"} | {f"op{i}" for i in range(db["depth"])}
            assert all(db[f"op{i}"] == da[f"op{i}"] for i in range(min(da["depth"], db["depth"])))
    assert depth_moves > 0


def test_every_vector_decodes_to_a_valid_arch_and_encode_inverts_decode(tiny):
    archs = set()
    for v in np.ndindex(*tiny.bounds()):
        a = tiny.decode(list(v))
        assert tiny.validate(a) == a and tiny.decode(tiny.encode(a)) == a
        active = json.loads(a)
        # positions of inactive labels are ignored by decode and encode as 0
        assert tiny.encode(a) == [x if k in active else 0 for k, x in zip(tiny.labels, v)]
        archs.add(a)
    assert archs == set(tiny.all_archs())
    with pytest.raises(SearchKDError, match="out of range"):
        tiny.decode([0] * (len(tiny.labels) - 1))


@pytest.mark.parametrize("which, distinct", [("tiny", 2 * (3 + 9 + 27)), ("nested", 3 * (1 + 2))])
def test_distinct_archs_are_the_distinct_networks_nni_freezes(which, distinct, request):
    """Brute force through NNI alone: freeze every full assignment, group equal networks."""
    space = request.getfixturevalue(which)
    by_net: dict[str, set[str]] = {}
    for sample in full_samples(space):
        frozen = space.model_space.freeze(sample)
        net = repr(frozen) + repr([getattr(m, "chosen", None) for m in frozen.modules()])  # InputChoice picks
        by_net.setdefault(net, set()).add(space.decode([space.values[k].index(sample[k]) for k in space.labels]))
    # one arch per distinct network, and distinct networks get distinct archs
    assert all(len(archs) == 1 for archs in by_net.values())
    assert len(by_net) == distinct == space.size() == len(space.all_archs()) == len(set(space.all_archs()))


def test_build_is_the_network_nni_freezes(tiny, nested):
    for space in (tiny, nested):
        for arch in space.all_archs()[::7]:
            net = space.build(arch)
            frozen = space.model_space.freeze(json.loads(arch))
            assert structure(net.model) == structure(frozen)
            assert count_cost(net)["params"] == sum(p.numel() for p in frozen.parameters()) / 1e6


def test_built_net_exposes_classifier_and_features(tiny):
    arch = '{"depth":2,"op0":"conv3x3","op1":"skip","width":16}'
    net = tiny.build(arch, num_classes=7)  # TinySpace takes num_classes
    x = torch.randn(2, 3, 32, 32)
    assert isinstance(net.classifier, torch.nn.Linear) and net.classifier.out_features == 7
    net.eval()
    f = net.forward_features(x)
    assert f.shape == (2, 16)
    assert torch.allclose(net.forward_head(f), net(x)) and net(x).shape == (2, 7)
    assert net.classifier is net.model.fc
    assert tiny.cost(arch)["params"] == count_cost(tiny.build(arch))["params"]


def test_class_count_of_a_space_without_num_classes(nested):
    factory = get_space(f"nni:{HERE}:nested_factory")  # a zero-argument factory: 4-class networks
    arch = nested.sample(0)
    assert factory.build(arch, num_classes=4).classifier.out_features == 4
    with pytest.raises(SearchKDError, match="4 classes .* the data 10"):
        factory.build(arch, num_classes=10)


def test_build_is_seeded_and_the_space_leaves_the_torch_rng_alone(tiny):
    arch = tiny.sample(5)
    torch.manual_seed(11)
    a = tiny.build(arch).state_dict()
    torch.manual_seed(11)
    b = tiny.build(arch).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    get_space(TINY).cost(tiny.sample(6))
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("spec, match", [
    ("nni:", "nni:MODULE:ATTR"),
    ("nni:examples.nni_space", "nni:MODULE:ATTR"),
    ("nni:a:b:c", "nni:MODULE:ATTR"),
    ("nni:no_such_module_xyz.spaces:Space", "cannot import 'no_such_module_xyz.spaces'.*PYTHONPATH"),
    ("nni:/no/such/file.py:Space", "file not found"),
    (f"nni:{HERE}:Missing", "has no attribute 'Missing'"),
    (f"nni:{HERE}:NOT_A_SPACE", "not a ModelSpace class"),
    (f"nni:{HERE}:not_a_space", "expected an nni.nas.nn.pytorch.ModelSpace, got Linear"),
    (f"nni:{HERE}:BrokenSpace", "building the model space failed .*boom"),
    (f"nni:{HERE}:ContinuousSpace", "'dropout' is continuous .*discrete choices only"),
])
def test_bad_specs_are_one_line_errors(spec, match):
    with pytest.raises(SearchKDError, match=match) as e:
        get_space(spec)
    assert "\n" not in str(e.value)


def test_a_net_without_a_linear_layer_is_refused():
    space = get_space(f"nni:{HERE}:NoLinearSpace")
    with pytest.raises(SearchKDError, match="no nn.Linear"):
        space.build(space.sample(0))


def test_a_net_that_cannot_run_is_bad_input_when_costed():
    space = get_space(f"nni:{HERE}:WrongInputSpace")
    with pytest.raises(SearchKDError, match="fails on a 3×32×32 image"):
        space.cost(space.sample(0))


def test_without_nni_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nni.nas.nn.pytorch", None)
    with pytest.raises(SearchKDError, match=r"pip install 'searchkd\[nni\]'"):
        get_space(TINY)


def test_a_space_made_from_a_class_is_named_by_its_module(monkeypatch):
    from searchkd.orchestrate.local import eval_config
    from searchkd.spaces.nni_space import NNISpace
    from searchkd.types import SearchConfig

    monkeypatch.syspath_prepend(str(ROOT))
    from examples.nni_space import TinySpace

    space = NNISpace(TinySpace)
    assert space.name == "nni:examples.nni_space:TinySpace"
    assert get_space(space.name).all_archs() == space.all_archs()
    # a relative file spec reaches the (Ray) evaluator as an absolute one, the teacher's too
    monkeypatch.chdir(ROOT)
    arch = space.sample(0)
    ec = eval_config(SearchConfig(space="nni:examples/nni_space.py:TinySpace", proxy="nwot",
                                  teacher=f"nni:examples/nni_space.py:TinySpace:{arch}"))
    assert ec.space == TINY and ec.teacher == f"{TINY}:{arch}"


def test_module_spec_on_the_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    space = get_space("nni:examples.nni_space:TinySpace")
    assert space.name == "nni:examples.nni_space:TinySpace" and space.size() == 78


def test_proxies_score_built_nets_with_a_resnet_or_nni_teacher(tiny):
    from searchkd.proxies import Scorer
    from searchkd.teachers import build_teacher, resolve_teacher

    torch.manual_seed(0)
    batch = (torch.randn(8, 3, 32, 32), torch.arange(8) % 10)
    largest = max(tiny.all_archs(), key=lambda a: tiny.cost(a)["params"])
    assert json.loads(largest) == {"depth": 3, "op0": "conv3x3", "op1": "conv3x3", "op2": "conv3x3", "width": 16}
    assert resolve_teacher(f"{TINY}:{largest}").space == TINY
    for teacher in (tiny.default_teacher, f"{TINY}:{largest}"):
        scorer = Scorer(["nwot", "params", "synflow", "diswot"], batch, teacher=build_teacher(teacher, space=TINY))
        rec = scorer.score_arch(tiny, tiny.sample(1))
        assert all(np.isfinite(v) for v in rec["scores"].values()), rec
        assert rec["scores"]["params"] == pytest.approx(rec["params"])  # both 10 classes here
    with pytest.raises(SearchKDError, match="lacks label"):
        resolve_teacher(f'{TINY}:{{"depth":2,"op0":"skip","width":8}}')


@pytest.mark.parametrize("strategy, objectives", [("evolution", ("proxy",)), ("nsga2", ("proxy", "params"))])
def test_search_end_to_end(tmp_path, tiny, strategy, objectives):
    from searchkd.orchestrate import run_search

    cfg = {"space": TINY, "proxy": "nwot", "strategy": strategy, "budget": 24, "batch_size": 8,
           "objectives": objectives, "options": {"population": 8}}
    res = run_search(cfg, tmp_path / strategy, plots=False, progress=False)
    archs = [json.loads(x)["arch"] for x in (tmp_path / strategy / "trials.jsonl").read_text().splitlines()]
    assert res.trials == len(archs) == len(set(archs)) == 24
    assert all(tiny.validate(a) == a for a in archs)
    assert res.best.arch in archs and res.config["teacher"] == "resnet56"


def test_search_stops_when_the_conditional_space_is_exhausted(tmp_path):
    from searchkd.orchestrate import run_search

    res = run_search({"space": NESTED, "proxy": "params", "strategy": "evolution", "budget": 50, "batch_size": 4},
                     tmp_path / "r", plots=False, progress=False)
    assert res.trials == 9


def test_a_search_never_starts_nni_machinery(tmp_path):
    code = f"""
import sys
import nni.experiment, nni.experiment.launcher
def refuse(*a, **k):
    raise SystemExit('an NNI experiment was started')
nni.experiment.Experiment.start = nni.experiment.Experiment.run = refuse
nni.experiment.launcher.start_experiment = refuse
from searchkd.cli import main
rc = main(['search', '--space', {TINY!r}, '--proxy', 'nwot', '--strategy', 'random', '--budget', '3',
           '--batch-size', '4', '--out', {str(tmp_path / 'r')!r}, '--quiet'])
bad = sorted(m for m in sys.modules if m.startswith(('nni.nas.experiment', 'nni.nas.strategy', 'nni.nas.execution')))
print(rc, bad)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.stdout.strip().splitlines()[-1] == "0 []", out.stderr[-2000:]
    assert (tmp_path / "r" / "result.json").exists()


def test_cli_search_and_score(tmp_path, capsys):
    from searchkd.cli import main

    out = tmp_path / "run"
    assert main(["search", "--space", TINY, "--proxy", "nwot", "--strategy", "evolution", "--budget", "6",
                 "--batch-size", "8", "--out", str(out), "--quiet"]) == 0
    assert capsys.readouterr().out.startswith('best {"depth":')
    result = json.loads((out / "result.json").read_text())
    assert result["trials"] == 6 and result["config"]["space"] == TINY
    assert main(["score", "--space", TINY, "--proxy", "params", "--arch", result["best"]["arch"], "--quiet"]) == 0
    assert result["best"]["arch"] in capsys.readouterr().out


@pytest.mark.parametrize("space", ["nni:no_such_module_xyz:Space", f"nni:{HERE}:ContinuousSpace"])
def test_cli_bad_spec_exits_2_with_one_line(tmp_path, capsys, space):
    from searchkd.cli import main

    assert main(["search", "--space", space, "--proxy", "nwot", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("searchkd: error: nni:") and err.count("\n") == 1
    assert not (tmp_path / "o").exists()
