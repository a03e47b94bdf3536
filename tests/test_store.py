"""Model files: round trip, and refusal of anything that could run code."""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest

from digitlab.errors import DigitlabError
from digitlab.preprocess import test_features as features_of_test_part  # (a library name, not a test)
from digitlab.fileio import sha256_file
from digitlab.store import load_model

SENTINEL = Path("/tmp/digitlab-test-sentinel-should-not-exist")


class Payload:
    """An object whose unpickling or reconstruction would leave a trace on disk."""

    def __reduce__(self):
        return (SENTINEL.touch, ())

    def __setstate__(self, state):
        SENTINEL.touch()


@pytest.fixture(scope="module")
def knn_folder(tmp_path_factory) -> Path:
    """A saved k-nearest-neighbours model: its learned state holds a tree object, so it goes through skops."""
    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    ds = load_dataset("digits", limit=300)
    folder = tmp_path_factory.mktemp("knn")
    save_model(train("knn", ds), ds, folder)
    return folder


@pytest.fixture()
def run_copy(lesson_run, tmp_path) -> Path:
    """A copy of the lesson's run folder (logistic regression, stored as safetensors)."""
    target = tmp_path / lesson_run.folder.name
    shutil.copytree(lesson_run.folder, target)
    SENTINEL.unlink(missing_ok=True)
    yield target
    SENTINEL.unlink(missing_ok=True)


@pytest.fixture()
def skops_copy(knn_folder, tmp_path) -> Path:
    target = tmp_path / "knn"
    shutil.copytree(knn_folder, target)
    SENTINEL.unlink(missing_ok=True)
    yield target
    SENTINEL.unlink(missing_ok=True)


def _reseal(folder: Path, **card_changes) -> None:
    """Make the card's checksum match whatever the weights file now holds (an attacker can do this too)."""
    card = json.loads((folder / "model.json").read_text())
    card.update(card_changes)
    card["sha256"] = sha256_file(folder / card["file"])
    (folder / "model.json").write_text(json.dumps(card))


def test_round_trip_gives_identical_predictions(lesson_run):
    loaded = load_model(lesson_run.folder)
    features, _ = features_of_test_part(lesson_run.record.dataset)
    np.testing.assert_array_equal(loaded.model.predict_proba(features),
                                  lesson_run.record.fitted.model.predict_proba(features))
    assert loaded.card.model == "logreg" and loaded.image_shape == (8, 8) and loaded.pixel_max == 16
    assert repr(loaded) == f"LoadedModel(id={loaded.id!r}, path={str(loaded.path)!r})"  # not every weight


def test_logistic_regression_is_stored_as_safetensors(lesson_run):
    card = json.loads((lesson_run.folder / "model.json").read_text())
    assert card["format"] == "safetensors" and card["file"] == "model.safetensors"
    assert card["state"]["coef_"] == {"kind": "array"}


def test_skops_round_trip(knn_folder):
    from digitlab.data import load_dataset

    loaded = load_model(knn_folder)
    assert loaded.path.name == "model.skops"
    features, labels = features_of_test_part(load_dataset("digits"))
    assert loaded.model.score(features, labels) > 0.9


@pytest.mark.parametrize("name", ["knn", "mlp"])
def test_the_same_model_saved_twice_is_the_same_file(name, tmp_path):
    """skops named each object by its id() and dated each member: a reproducibility audit saved one model twice and
    got two SHA-256s, so two model ids."""
    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    ds = load_dataset("digits", limit=300)
    cards = []
    for folder in (tmp_path / "a", tmp_path / "b"):
        save_model(train(name, ds, params={"max_iter": 20} if name == "mlp" else None), ds, folder)
        cards.append(json.loads((folder / "model.json").read_text()))
    assert cards[0]["sha256"] == cards[1]["sha256"]
    assert load_model(tmp_path / "a").model.score(*features_of_test_part(ds)) > 0.5


@pytest.mark.parametrize("target", ["folder", "model.json", "model.safetensors"])
def test_any_path_into_the_run_loads(lesson_run, target):
    path = lesson_run.folder if target == "folder" else lesson_run.folder / target
    assert load_model(path).card.dataset == "digits"


def test_pickle_payload_as_skops_is_refused_and_never_runs(skops_copy):
    (skops_copy / "model.skops").write_bytes(pickle.dumps(Payload()))
    _reseal(skops_copy)
    with pytest.raises(DigitlabError, match="not a skops file"):
        load_model(skops_copy)
    assert not SENTINEL.exists()


def test_pickle_payload_as_safetensors_is_refused_and_never_runs(run_copy):
    (run_copy / "model.safetensors").write_bytes(pickle.dumps(Payload()))
    _reseal(run_copy)
    with pytest.raises(DigitlabError, match="not a valid safetensors file"):
        load_model(run_copy)
    assert not SENTINEL.exists()


def test_untrusted_type_is_refused_and_never_runs(skops_copy):
    import skops.io as sio

    sio.dump({"model": Payload()}, skops_copy / "model.skops")
    _reseal(skops_copy)
    with pytest.raises(DigitlabError, match="not trusted"):
        load_model(skops_copy)
    assert not SENTINEL.exists()


@pytest.mark.parametrize("name", ["model.safetensors", "model.skops"])
def test_checksum_mismatch_is_refused(run_copy, skops_copy, name):
    folder = run_copy if name == "model.safetensors" else skops_copy
    data = bytearray((folder / name).read_bytes())
    data[-10] ^= 0xFF
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(DigitlabError, match="does not match its model card"):
        load_model(folder)


def test_card_cannot_set_dunder_attributes(run_copy):
    card = json.loads((run_copy / "model.json").read_text())
    state = {**card["state"], "__class__": {"kind": "json", "value": "x"}}
    _reseal(run_copy, state=state)
    with pytest.raises(DigitlabError, match="invalid attribute"):
        load_model(run_copy)


def test_a_card_from_an_older_scikit_learn_loads(run_copy):
    """scikit-learn 1.6 wrote LogisticRegression's multi_class as "deprecated"; 1.8 removed it, and a run made with
    1.6 (which digitlab accepts) could not be loaded: "the card's parameters do not fit the model"."""
    card = json.loads((run_copy / "model.json").read_text())
    card["params"]["multi_class"] = "deprecated"
    (run_copy / "model.json").write_text(json.dumps(card))
    assert load_model(run_copy).model.predict(np.zeros((1, 64))).shape == (1,)
    card["params"]["multi_class"] = "ovr"  # set on purpose, and gone: said, with the likely reason
    (run_copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(DigitlabError, match="multi_class.*another version of scikit-learn"):
        load_model(run_copy)


def test_foreign_tensor_is_refused(run_copy):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(run_copy / "model.safetensors"))
    tensors["extra"] = np.zeros(3)
    save_file(tensors, str(run_copy / "model.safetensors"))
    _reseal(run_copy)
    with pytest.raises(DigitlabError, match="do not match the state"):
        load_model(run_copy)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_weights_that_are_not_finite_are_refused(run_copy, bad):
    """A resealed file with one NaN weight would answer "nan%" for every picture (and bare NaN in --json)."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(run_copy / "model.safetensors"))
    tensors["coef_"][3, 5] = bad
    save_file(tensors, str(run_copy / "model.safetensors"))
    _reseal(run_copy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one line for the person, not NumPy's RuntimeWarning before it
        with pytest.raises(DigitlabError, match="answers NaN .its weights are not all finite"):
            load_model(run_copy)


def test_a_bare_file_without_card_is_refused(tmp_path):
    stray = tmp_path / "model.skops"
    stray.write_bytes(b"anything")
    with pytest.raises(DigitlabError, match="no model card"):
        load_model(stray)


def test_garbage_card_is_refused(run_copy):
    (run_copy / "model.json").write_text("{not json")
    with pytest.raises(DigitlabError, match="not a readable model card"):
        load_model(run_copy)


def _forest_with_a_lying_tree(folder: Path) -> None:
    """Save a small forest, then point one tree's first node far outside its arrays (a crafted file)."""
    import skops.io as sio
    from sklearn.tree._tree import Tree

    from digitlab.data import load_dataset
    from digitlab.store import save_model
    from digitlab.train import train

    ds = load_dataset("digits", limit=300)
    save_model(train("forest", ds, params={"n_estimators": 2}), ds, folder)
    model = load_model(folder).model
    honest = model.estimators_[0].tree_
    state = honest.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**12  # predict would read memory far outside the array
    state["nodes"] = nodes
    evil = Tree(honest.n_features, np.array(honest.n_classes, dtype=np.intp), honest.n_outputs)
    evil.__setstate__(state)
    model.estimators_[0].tree_ = evil
    sio.dump(model, folder / "model.skops")
    _reseal(folder)


def test_a_tree_with_out_of_range_nodes_is_refused(tmp_path):
    folder = tmp_path / "forest"
    _forest_with_a_lying_tree(folder)
    with pytest.raises(DigitlabError, match="node indices out of range"):
        load_model(folder)


def test_a_file_holding_another_model_than_its_card_is_refused(skops_copy):
    import skops.io as sio
    from sklearn.dummy import DummyClassifier

    from digitlab.data import load_dataset

    ds = load_dataset("digits")
    impostor = DummyClassifier(strategy="constant", constant=7).fit(ds.train_images.reshape(len(ds.train_images), -1) / 16, ds.train_labels)
    sio.dump(impostor, skops_copy / "model.skops")
    _reseal(skops_copy)
    with pytest.raises(DigitlabError, match="holds a DummyClassifier"):
        load_model(skops_copy)


@pytest.mark.parametrize("change", [
    {"format": ["skops"]}, {"image_shape": 8}, {"pixel_max": "x"}, {"sha256": 5}, {"split": [1]},
    {"params": None}, {"dataset": ["digits"]},
])
def test_a_card_with_wrong_types_is_refused(run_copy, change):
    card = json.loads((run_copy / "model.json").read_text())
    card.update(change)
    (run_copy / "model.json").write_text(json.dumps(card))
    with pytest.raises(DigitlabError, match="model card"):
        load_model(run_copy)


@pytest.mark.parametrize("name, entry", [
    ("predict_proba", {"kind": "json", "value": 1}),  # a method, not learned state
    ("coef_", {"kind": "json"}),  # no value
    ("n_iter_", {"kind": "float64", "value": "abc"}),
])
def test_a_card_cannot_plant_bad_state(run_copy, name, entry):
    card = json.loads((run_copy / "model.json").read_text())
    _reseal(run_copy, state={**card["state"], name: entry})
    with pytest.raises(DigitlabError):
        load_model(run_copy)


def test_weights_of_the_wrong_size_are_refused(run_copy):
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(run_copy / "model.safetensors"))
    tensors["coef_"] = tensors["coef_"][:, :3].copy()
    save_file(tensors, str(run_copy / "model.safetensors"))
    _reseal(run_copy)
    with pytest.raises(DigitlabError, match="does not work on 8×8 images"):
        load_model(run_copy)


def test_a_zip_bomb_is_refused_at_once(skops_copy):
    """A 1 MB file whose schema.json inflates to 1 GiB: refused from the zip's directory, in well under a second."""
    import resource
    import time
    import zipfile

    bomb = skops_copy / "model.skops"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("schema.json", "w", force_zip64=True) as member:
            chunk = b" " * (1 << 20)
            for _ in range(1024):
                member.write(chunk)
    assert bomb.stat().st_size < 2 << 20
    _reseal(skops_copy)
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    with pytest.raises(DigitlabError, match="zip bomb"):
        load_model(skops_copy)
    assert time.perf_counter() - start < 1.0
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert grown_kib < 200 * 1024


def test_a_skops_model_saves_and_loads_without_importing_pytorch(knn_folder, tmp_path):
    """skops' import walks every scikit-learn package, one of which imports PyTorch: digitlab steps around it.

    (That skops still trusts what these models need, the round trips of every skops model check.)"""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from digitlab.data import load_dataset\n"
        "from digitlab.store import load_model, save_model\n"
        "from digitlab.preprocess import test_features\n"
        "from digitlab.train import train\n"
        f"loaded = load_model({str(knn_folder)!r})\n"
        "ds = load_dataset('digits', limit=300)\n"
        f"save_model(train('svm', ds), ds, {str(tmp_path / 'svm')!r})\n"
        f"again = load_model({str(tmp_path / 'svm')!r})\n"
        "answers = again.model.predict(test_features(ds)[0][:5]).tolist()\n"
        "print(type(loaded.model).__name__, type(again.model).__name__, answers)\n"
        "print('torch' in sys.modules, 'sklearn.externals.array_api_compat.torch' in sys.modules,\n"
        "      'dask' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()[-2:]
    assert first.startswith("KNeighborsClassifier CalibratedClassifierCV ["), out.stdout
    assert second == "False False False", out.stdout  # no PyTorch, the block lifted after, and no Dask


@pytest.mark.parametrize("dtype, shape", [("BF16", [2]), ("F8_E4M3", [4])])  # valid safetensors, no NumPy type
def test_a_weights_file_in_a_dtype_numpy_lacks_is_one_line(run_copy, dtype, shape):
    import struct

    header = json.dumps({"coef_": {"dtype": dtype, "shape": shape, "data_offsets": [0, 4]}}).encode()
    (run_copy / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + bytes(4))
    _reseal(run_copy)
    # where NumPy lacks the type: "not a valid safetensors file"; where ml_dtypes lends it one, the state check
    with pytest.raises(DigitlabError, match="not a valid safetensors file|do not match the state") as refused:
        load_model(run_copy)
    assert "\n" not in str(refused.value)
