"""The typed model card: every field checked once, every damaged card one clear line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from digitlab.card import MAX_CARD_BYTES, ModelCard
from digitlab.errors import DigitlabError
from digitlab.store import load_model


@pytest.fixture()
def run_copy(lesson_run, tmp_path) -> Path:
    target = tmp_path / lesson_run.folder.name
    shutil.copytree(lesson_run.folder, target)
    return target


def _card(folder: Path) -> dict:
    return json.loads((folder / "model.json").read_text())


def test_the_saved_card_reads_back_equal(lesson_run):
    card = ModelCard.from_file(lesson_run.folder / "model.json")
    assert card.model == "logreg" and card.dataset == "digits"
    assert card.image_shape == (8, 8) and card.pixel_max == 16 and card.n_pixels == 64
    assert card.accuracy == lesson_run.metrics.accuracy
    assert card.classes == tuple(range(10)) and card.split["seed"] == 42
    assert ModelCard.from_json(card.to_json()) == card


def test_a_card_with_only_the_required_fields_loads(run_copy):
    """Cards carry more fields as digitlab grows; the eight that loading needs are enough."""
    full = _card(run_copy)
    keep = {"format", "file", "sha256", "model", "dataset", "image_shape", "pixel_max", "params", "state"}
    (run_copy / "model.json").write_text(json.dumps({k: v for k, v in full.items() if k in keep}))
    loaded = load_model(run_copy)
    assert loaded.id == full["id"]  # rebuilt from model, dataset and checksum
    assert loaded.card.accuracy is None and loaded.card.metrics == {}


def test_unknown_fields_from_a_newer_digitlab_are_ignored(run_copy):
    doc = {**_card(run_copy), "explanations": {"saliency": "integrated gradients"}}
    (run_copy / "model.json").write_text(json.dumps(doc))
    assert load_model(run_copy).card.model == "logreg"


@pytest.mark.parametrize("text, message", [
    ('{"image_shape": [Infinity, 8]}', "Infinity"),
    ('{"pixel_max": 1e400}', "out of range"),
    ('{"pixel_max": NaN}', "NaN"),
])
def test_non_finite_numbers_are_refused(run_copy, text, message):
    doc = json.dumps(_card(run_copy))[:-1] + ", " + text[1:]  # the bad field last: it wins
    (run_copy / "model.json").write_text(doc)
    with pytest.raises(DigitlabError, match="not a readable model card"):
        load_model(run_copy)


@pytest.mark.parametrize("change, field", [
    ({"image_shape": [10**6, 8]}, "image_shape"), ({"image_shape": [8.0, 8]}, "image_shape"),
    ({"pixel_max": 0}, "pixel_max"), ({"pixel_max": True}, "pixel_max"), ({"size_bytes": -1}, "size_bytes"),
    ({"classes": ["a"]}, "classes"), ({"train_seconds": "fast"}, "train_seconds"), ({"model": 3}, "model"),
    ({"sha256": "ABC"}, "sha256"), ({"metrics": []}, "metrics"), ({"state": [1]}, "state"),
])
def test_each_field_is_checked(run_copy, change, field):
    (run_copy / "model.json").write_text(json.dumps({**_card(run_copy), **change}))
    with pytest.raises(DigitlabError, match=f"field '{field}'") as info:
        load_model(run_copy)
    assert "\n" not in str(info.value)


def test_a_weights_file_outside_the_folder_is_refused_by_name(run_copy):
    (run_copy / "model.json").write_text(json.dumps({**_card(run_copy), "file": "../../etc/passwd"}))
    with pytest.raises(DigitlabError, match="field 'file' .* 'model.safetensors', beside the card"):
        load_model(run_copy)


def test_a_deeply_nested_card_is_one_line(run_copy):
    for depth in (40, 100_000):
        nested = "[" * depth + "]" * depth
        (run_copy / "model.json").write_text(json.dumps(_card(run_copy))[:-1] + f', "metrics": {nested}}}')
        with pytest.raises(DigitlabError, match="nested too deeply") as info:
            load_model(run_copy)
        assert "\n" not in str(info.value)


def test_a_huge_card_is_refused_without_reading_it_all(run_copy):
    with open(run_copy / "model.json", "ab") as handle:
        handle.write(b" " * (MAX_CARD_BYTES + 10))
    with pytest.raises(DigitlabError, match="far too large"):
        load_model(run_copy)


@pytest.mark.parametrize("change", [
    {"train_seconds": 10**400}, {"metrics": {"accuracy": 10**400}}, {"state": {"coef_": 5}},
])
def test_huge_integers_and_bad_state_entries_are_one_line(run_copy, change):
    text = json.dumps({**_card(run_copy), **change})
    (run_copy / "model.json").write_text(text)
    with pytest.raises(DigitlabError) as info:
        load_model(run_copy)
    assert "\n" not in str(info.value)
