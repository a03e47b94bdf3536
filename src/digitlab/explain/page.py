"""``explain.html``: every explanation of one saved model on one self-contained page.

:func:`explain_run` loads a saved run, rebuilds its exact test split (as :mod:`digitlab.reproduce`
does), computes the saliency maps, robustness curves and the map of what the model learned,
draws the figures into ``explain-figures/`` (all of them, or a stopped run leaves the last ones: they are drawn in a
hidden folder first) and writes ``explain.html`` (figures embedded as ``data:`` URIs, the map as inline SVG; no
network) and ``explain.json`` (the numbers), each file atomically.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from digitlab.data.dataset import Dataset
from digitlab.errors import DigitlabError
from digitlab.explain.model import Explainable
from digitlab.fileio import remove_stale_parts, replace_together, scratch_folder
from digitlab.predict import a_digit, predict_images, shown_percent

__all__ = ["ExplainResult", "explain_run", "load_explainable", "rebuild_test_split"]

FIGURE_FOLDER = "explain-figures"


@dataclass
class ExplainResult:
    """What :func:`explain_run` wrote and how long each part took."""

    html: Path
    figures: dict[str, Path]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def rebuild_test_split(loaded: Any) -> Dataset:
    """The dataset a saved model was tested on, with the very same test images
    (:func:`digitlab.reproduce.run_dataset`); one clear line when the card does not say how."""
    from digitlab.reproduce import run_dataset

    return run_dataset(loaded.card, str(loaded.path.parent))


def load_explainable(path: Path) -> tuple[Explainable, Any]:
    """Load a run folder or model file as an :class:`Explainable`, with the loaded model (card and all)."""
    from digitlab.store import load_model

    path = Path(path)
    if not path.exists():
        raise DigitlabError(f"--model {path}: no such run folder or model file")
    loaded = load_model(path, detector=False)  # explain never asks "is it a digit?": a run copied without it explains
    name = f"{loaded.card.model} ({loaded.path.parent.name})"
    return Explainable(loaded.model, loaded.pixel_max, tuple(loaded.image_shape), name, loaded.temperature), loaded


def explain_run(
    model_path: Path,
    compare: Sequence[Path] = (),
    out: Path | None = None,
    *,
    n_robustness: int = 1000,
    n_map: int = 1500,
    max_errors: int = 24,
    per_digit: int = 2,
    n_check: int = 100,
    seed: int = 0,
    dataset: str | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> ExplainResult:
    """Explain the saved model at ``model_path``; write ``explain.html`` and its figures into ``out``.

    Parameters
    ----------
    model_path : Path
        A run folder, its ``model.json`` or the weights file.
    compare : sequence of Path
        Other saved models (same image size) drawn on the same robustness axes.
    out : Path, optional
        Where to write; by default the model's run folder.
    n_robustness, n_map : int
        Test images (seeded, stratified subsets) each perturbation is measured on, and in the t-SNE map.
    max_errors, per_digit : int
        Saliency maps for at most ``max_errors`` misclassified images and ``per_digit`` correct ones per digit.
    n_check : int
        Test images (stratified, seeded; those read right) for :func:`~digitlab.explain.saliency.deletion_check`.
    seed : int
        Seed of the subsets, the noise, the distortions and t-SNE.
    dataset : str, optional
        A handwriting set to explain it on (the samples it never learned from), into ``explain-<set>/`` by default.
    step : callable
        Called with a short description as each part starts (for a progress line).

    Returns
    -------
    ExplainResult
    """
    started = time.perf_counter()
    again = _command(model_path, compare, out, {"--robustness-images": (n_robustness, 1000),
                                                "--map-images": (n_map, 1500), "--seed": (seed, 0)}, dataset)
    job, loaded, out = _start(model_path, compare, out, seed, step, dataset)
    accuracy = float(np.mean(job.predicted == job.labels))
    job.seconds["load and predict"] = time.perf_counter() - started
    with scratch_folder(out, ".explain-") as scratch:  # the figures go in whole, or the last ones stay
        job.folder = scratch / FIGURE_FOLDER
        job.folder.mkdir()
        looks = _what_it_looks_at(job, max_errors, per_digit, n_check)  # chosen images, targets, maps, ...
        fails = _how_it_fails(job, n_robustness)
        learned = _what_it_learned(job, n_map, chosen=looks[0])
        how = _how_it_learned(job)
        step("writing explain.html")
        [figures] = replace_together([job.folder], out)
        job.paths = {name: figures / path.name for name, path in job.paths.items()}
        job.seconds["total"] = time.perf_counter() - started
        _write_page(job, loaded, out, accuracy, looks, fails, learned, how, max_errors, per_digit, again, model_path)
    return ExplainResult(out / "explain.html", job.paths, job.seconds, job.notes)


@dataclass
class _Job:
    """What every part of the page reads: the model, its test images and answers, where figures go."""

    model: Explainable
    others: list
    data: Dataset
    images: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    pmax: int
    folder: Path
    seed: int
    step: Callable[[str], None]
    part: str | None = None  # which samples of a handwriting set, in words (None: the model's test images)
    learned: bool = False  # the model learned from some of that set (fine-tuned on it): no "fine-tune it" hint
    paths: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    rejected: set = field(default_factory=set)  # mistakes the run's detector turns away (indices into images)


def _what_it_looks_at(job: _Job, max_errors: int, per_digit: int, n_check: int):
    """Saliency maps for the chosen images, and the deletion check of each method."""
    from digitlab.explain import figures, robustness, saliency

    model, images, labels, predicted, confidence = job.model, job.images, job.labels, job.predicted, job.confidence
    pmax, folder, seed, step, paths, seconds, notes = job.pmax, job.folder, job.seed, job.step, job.paths, job.seconds, job.notes
    t = time.perf_counter()
    step("saliency maps")
    chosen = saliency.choose_examples(labels, predicted, confidence, max_errors=max_errors, per_digit=per_digit)
    chosen_proba = model.proba(images[chosen])
    targets = predicted[chosen]
    maps: list[tuple[str, np.ndarray]] = []
    if model.is_cnn and not saliency.captum_available():
        notes.append(f"{saliency.NO_CAPTUM}: it is shown with occlusion only.")
    else:
        method, gradient = saliency.gradient_saliency(model, images[chosen], targets)
        if gradient is not None:
            maps.append((method, gradient))
    maps.append(("occlusion", saliency.occlusion(model, images[chosen], targets)))
    sure = chosen_proba[np.arange(len(chosen)), predicted[chosen]]
    titles = [f"{labels[i]} → not a digit (map for {predicted[i]})" if i in job.rejected
              else f"{labels[i]} → {predicted[i]} ({shown_percent(p, 0)})" if labels[i] != predicted[i]
              else f"{labels[i]} ({shown_percent(p, 0)})" for i, p in zip(chosen, sure)]
    paths["saliency"] = figures.plot_saliency(images[chosen], titles, list(labels[chosen] != predicted[chosen]),
                                              maps, pmax, folder / "saliency.png")
    n_wrong = int(np.sum(labels != predicted))
    step("saliency check: deleting the most salient pixels")
    check = robustness.stratified_indices(labels, n_check, seed)
    check = check[predicted[check] == labels[check]]
    deletion = []
    for name, _ in maps if len(check) else ():  # none read right (a few samples): no check to make (a reviewer)
        if name == "occlusion":
            check_maps = saliency.occlusion(model, images[check], labels[check])
        else:
            check_maps = saliency.gradient_saliency(model, images[check], labels[check])[1]
        after_salient, after_random = saliency.deletion_check(model, images[check], labels[check], check_maps,
                                                              seed=seed)
        deletion.append({"method": name, "n_images": int(len(check)), "salient": after_salient,
                         "random": after_random})
    seconds["saliency"] = time.perf_counter() - t
    return chosen, targets, maps, deletion, n_wrong, _single_view_differs(model, images, predicted)


def _single_view_differs(model: Explainable, images: np.ndarray, predicted: np.ndarray) -> tuple[int, int] | None:
    """For a CNN that answers by averaging shifted views: on how many test images the picture alone, which the
    gradient maps explain, gets another answer, and the number of views (None for any other model)."""
    if not model.is_cnn:
        return None
    from digitlab.models.cnn_torch import tta_shifts

    net = model.model
    views = net.tta
    count = len(tta_shifts(views)) + 1  # the picture itself and its shifts
    if count == 1:  # tta False or 1: nothing averaged
        return None
    try:
        net.tta = False
        alone = model.predict(images)
    finally:
        net.tta = views
    return int(np.sum(alone != predicted)), count


def _how_it_fails(job: _Job, n_robustness: int):
    """Robustness curves of every compared model, one figure per perturbation."""
    from digitlab.explain import figures, robustness

    model, others, images, labels, predicted = job.model, job.others, job.images, job.labels, job.predicted
    pmax, folder, seed, step, paths, seconds = job.pmax, job.folder, job.seed, job.step, job.paths, job.seconds
    t = time.perf_counter()
    subset = robustness.stratified_indices(labels, n_robustness, seed)
    sub_images, sub_labels = images[subset].astype(np.float64), labels[subset]
    example = sub_images[int(np.flatnonzero(predicted[subset] == sub_labels)[0]) if np.any(
        predicted[subset] == sub_labels) else 0][None]
    curves: dict[str, list] = {}
    for name, perturbation in robustness.PERTURBATIONS.items():
        step(f"robustness: {name}")
        curves[name] = [robustness.robustness_curve(m, sub_images * (m.pixel_max / pmax), sub_labels, perturbation,
                                                    seed=seed) for m in [model, *others]]
        examples = np.concatenate([perturbation.apply(example, level, pixel_max=pmax, seed=seed)
                                   for level in perturbation.levels])
        paths[f"robustness_{name}"] = figures.plot_robustness(perturbation, curves[name], examples, pmax,
                                                              folder / f"robustness_{name}.png")
    seconds["robustness"] = time.perf_counter() - t
    return subset, curves


def _what_it_learned(job: _Job, n_map: int, chosen: np.ndarray):
    """The t-SNE map (as SVG and its image sprite); the CNN's filters and feature maps."""
    from digitlab.explain import embedding, figures, robustness

    model, images, labels, predicted = job.model, job.images, job.labels, job.predicted
    pmax, folder, seed, step, paths, seconds = job.pmax, job.folder, job.seed, job.step, job.paths, job.seconds
    t = time.perf_counter()
    step("t-SNE map")
    shown = robustness.stratified_indices(labels, n_map, seed)
    feature_name, feats = embedding.model_features(model, images[shown])
    points = embedding.tsne_map(feats, seed)
    columns = 40
    svg = embedding.svg_map(points, labels[shown], predicted[shown], sprite_columns=columns, tile=model.image_shape[1])
    sprite = embedding.sprite_uri(images[shown], pmax, columns)
    seconds["t-SNE map"] = time.perf_counter() - t
    t = time.perf_counter()
    layer_view = None
    if model.is_cnn:
        step("filters and feature maps")
        paths["filters"] = figures.plot_filters(embedding.first_layer_filters(model), folder / "filters.png")
        right = [i for i in chosen if labels[i] == predicted[i]]
        one = int(right[0] if right else chosen[0])
        layer_view = {"index": one, "label": int(labels[one])}
        paths["feature_maps"] = figures.plot_feature_maps(
            images[one].astype(np.float64), embedding.feature_maps(model, images[one]), pmax,
            f"What each layer of the CNN computes for one {'sample' if job.part else 'test picture'}, "
            f"{a_digit(int(labels[one]))}",
            folder / "feature_maps.png")
    seconds["filters and feature maps"] = time.perf_counter() - t
    return shown, feature_name, svg, sprite, layer_view


def _how_it_learned(job: _Job):
    """The CNN's training history, or a learning curve for the other models."""
    model, data, pmax, folder, seed, step = job.model, job.data, job.pmax, job.folder, job.seed, job.step
    paths, seconds = job.paths, job.seconds
    t = time.perf_counter()
    step("how it learned")
    from digitlab.explain import learning

    history = list(getattr(model.model, "history_", []) or [])
    curve = None
    if history:
        paths["history"] = learning.plot_history(history, folder / "history.png", _smoothing(model.model))
    if job.part is not None and not model.is_cnn:
        job.notes.append(f"No learning curve: it is drawn from the training images; this page explains the model "
                         f"on handwriting set {data.name!r}.")
    elif not model.is_cnn:
        try:  # refits on the training part: a fine-tuned run's writers may have been removed since (a reviewer)
            curve = learning.learning_curve_of(model.model, data.train_images, data.train_labels, pmax, seed=seed)
            paths["learning_curve"] = learning.plot_learning_curve(curve, model.name, folder / "learning_curve.png")
        except ValueError:  # scikit-learn's word for too few samples, or of too few digits, to split in folds
            job.notes.append(f"No learning curve: the training part ({data.n_train:,} samples now) is too small to "
                             "refit the model on in folds.")
    seconds["how it learned"] = time.perf_counter() - t
    return history, curve


def _smoothing(net: Any) -> float:
    """The label smoothing a CNN trained with (0 for none)."""
    return float(getattr(net, "label_smoothing", 0.0) or 0.0)


def _start(model_path: Path, compare: Sequence[Path], out: Path | None, seed: int,
           step: Callable[[str], None], dataset: str | None = None) -> tuple[_Job, Any, Path]:
    """Load the model (and those compared), rebuild its test images, predict them; the folder to write."""
    from digitlab.runs import check_writable

    model, loaded = load_explainable(model_path)
    others, seen, compared = [], set(), []
    for path in compare:
        other, theirs = load_explainable(path)
        _check_comparable(other, theirs, model, loaded, path)
        compared.append((path, theirs.card))
        if theirs.card.sha256 not in seen:  # each model once, however many copies of its run are given
            others.append(other)
            seen.add(theirs.card.sha256)
    kinds = [m.name.split(" (")[0] for m in (model, *others)]
    if len(set(kinds)) == len(kinds):  # "cnn", not "cnn (20261202T081907Z-mnist-cnn)", where no two are alike
        model, others = replace(model, name=kinds[0]), [replace(m, name=k) for m, k in zip(others, kinds[1:])]
    data, part, learned = _on_set(dataset, loaded.card, model, compared) if dataset else (None, None, False)
    given = out is not None
    out = Path(out) if given else loaded.path.parent / (f"explain-{dataset}" if dataset else "")
    check_writable(out, *(("--out",) if given else ("the run folder", "choose a writable one with --out DIR")))
    remove_stale_parts(out, ("explain.html", "explain.json"))  # a killed explain's temporary files
    if data is None:
        step("rebuilding the test images")
        data = rebuild_test_split(loaded)
    images, labels = data.test_images, np.asarray(data.test_labels).astype(int)
    predicted = model.predict(images)
    wrong = np.flatnonzero(predicted != labels)
    confidence = np.ones(len(labels))  # only the mistakes' confidence orders anything: the surest first
    confidence[wrong] = model.proba(images[wrong])[np.arange(len(wrong)), predicted[wrong]]
    job = _Job(model, others, data, images, labels, predicted, confidence, model.pixel_max, out / FIGURE_FOLDER, seed,
               step, part, learned, rejected=_rejected(loaded, images, wrong))  # figures: staged, then moved here
    return job, loaded, out


def _rejected(loaded: Any, images: np.ndarray, wrong: np.ndarray) -> set[int]:
    """The mistakes the run's detector turns away: titled so (a teacher saw a scribble as "5 → 8 (89%)", a mistake)"""
    from digitlab.store import _load_detector
    try:  # explain needs no detector: without one that loads, no mistake is turned away
        detector = _load_detector(loaded.card, loaded.path.parent)
    except DigitlabError:
        return set()
    answers = predict_images(loaded, loaded.card, images[wrong], detector=detector) if detector else []
    return {int(i) for i, p in zip(wrong, answers) if p.kind == "not_a_digit"}


def _on_set(dataset: str, card: Any, model: Explainable, compared: list) -> tuple[Dataset, str, bool]:
    """The samples of handwriting set ``dataset`` to explain the model on, which they are in words, and whether the
    model learned from some of the set; before any folder is named after it. Refused in one line: a name that is no
    set's, and a compared model that learned from these samples (``compared``: (path, card) pairs)."""
    from digitlab.data import DATASETS, check_dataset
    from digitlab.data.handwriting import HandwritingSet
    from digitlab.handwriting_eval import learned_from, set_as_test_part

    if dataset in DATASETS:
        raise DigitlabError(f"--dataset {dataset}: name a handwriting set (`digitlab data info` lists them); "
                            "without --dataset the page shows the model on its own test images")
    check_dataset(dataset)
    store = HandwritingSet.open(dataset)  # opened once: its samples for the part scored and for what each learned
    data, part = set_as_test_part(store, card, model.image_shape, model.pixel_max)
    samples = store.samples()
    for path, theirs in compared:  # a reviewer: a fine-tuned run's curves drawn on its own training samples
        if any(learned_from(theirs, samples, dataset)):
            raise DigitlabError(f"--compare {path}: it learned from handwriting set {dataset!r}, so some of these "
                                "samples were its training; explain that run with --compare the other instead (its "
                                "page shows only the samples it never learned from)")
    return data, part, any(learned_from(card, samples, dataset))


def _check_comparable(other: Explainable, theirs: Any, model: Explainable, loaded: Any, path: Path) -> None:
    """Refuse, in one line, a model that cannot be measured on the explained model's test images: another image
    size, the explained model itself, or one trained on another random split (some test images were its training)."""
    if other.image_shape != model.image_shape:
        raise DigitlabError(f"--compare {other.name}: it takes {other.image_shape[0]}×{other.image_shape[1]} "
                            f"images but the explained model takes {model.image_shape[0]}×{model.image_shape[1]}; "
                            "compare models of the same dataset")
    if theirs.path.resolve() == loaded.path.resolve():
        raise DigitlabError(f"--compare {path}: that is the model explained itself; compare another run")
    if theirs.card.sha256 == loaded.card.sha256:  # a checksum-verified copy: the very same weights
        raise DigitlabError(f"--compare {path}: that is a copy of the model explained (the same weights); "
                            "compare another run")
    mine, theirs_split = _test_part(loaded.card), _test_part(theirs.card)
    if loaded.card.dataset == theirs.card.dataset and mine.get("kind") != "official" and mine != theirs_split:
        said = ", ".join(f"{k} {v}" for k, v in theirs_split.items() if not isinstance(v, list))
        raise DigitlabError(f"--compare {path}: it was trained on another split of {loaded.card.dataset} ({said}) "
                            "than the model explained, so some of these test images were its training images; "
                            "compare runs made with the same --seed and --test-size")


def _test_part(card: Any) -> dict[str, Any]:
    """What in a card's split decides its test images: not ``--limit`` or ``--validation``, which only take from
    the training part (an official split's test images are fixed)."""
    return {k: v for k, v in card.split.items() if k not in ("limit", "limit_seed", "validation")}


def _command(model_path: Path, compare: Sequence[Path], out: Path | None, options: dict[str, tuple[int, int]],
             dataset: str | None = None) -> str:
    """The command that writes this page again: the model, the models compared and the folder, as given, and
    each of ``options`` (flag: (value, the command's default)) whose value is not the default."""
    import shlex

    words = ["digitlab", "explain", "--model", str(model_path)] + (["--dataset", dataset] if dataset else [])
    words += [word for path in compare for word in ("--compare", str(path))]
    words += ["--out", str(out)] if out is not None else []
    words += [word for flag, (value, default) in options.items() if value != default for word in (flag, str(value))]
    return shlex.join(words)


def _write_page(job: _Job, loaded: Any, out: Path, accuracy: float, looks: tuple, fails: tuple, learned: tuple,
                how: tuple, max_errors: int, per_digit: int, again: str, model_path: Path) -> None:
    """``explain.json`` and ``explain.html`` from what each part found, both written atomically."""
    import shlex

    from digitlab.explain import embedding, learning, robustness
    from digitlab.fileio import write_text_atomic
    from digitlab.pages import embed_png, render

    (chosen, targets, maps, deletion, n_wrong, single_view), (subset, curves) = looks, fails
    (shown, feature_name, svg, sprite, layer_view), (history, curve) = learned, how
    model, others, data, labels, paths, seconds, seed = (job.model, job.others, job.data, job.labels, job.paths,
                                                          job.seconds, job.seed)
    doc = {
        "model": model.name, "model_id": loaded.id, "dataset": data.name, "part": job.part, "n_test": int(len(labels)),
        "accuracy": accuracy, "n_errors": n_wrong, "compared": [m.name for m in others],
        "saliency": {"methods": [name for name, _ in maps], "images": [int(i) for i in chosen],
                     "targets": [int(v) for v in targets], "deletion_check": deletion,
                     "single_view_differs": None if single_view is None else single_view[0]},
        "robustness": {"n_images": int(len(subset)), "seed": seed,
                       "curves": [c.to_dict() for cs in curves.values() for c in cs]},
        "map": {"features": feature_name, "n_images": int(len(shown)), "method": "t-SNE (PCA to 50 first)"},
        "learning": {"history": history, "learning_curve": None if curve is None else curve.to_dict()},
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
    }
    html = render(
        "explain.html.j2", doc=doc, images={k: embed_png(p) for k, p in paths.items()},
        perturbations=robustness.PERTURBATIONS, curves=curves, svg=svg, sprite=sprite, tile=model.image_shape[1],
        colours=embedding.DIGIT_COLOURS, layer_view=layer_view, notes=job.notes, is_cnn=model.is_cnn,
        methods=[name for name, _ in maps], n_wrong=n_wrong, n_shown_wrong=int(min(n_wrong, max_errors)),
        n_rejected=len(job.rejected & {int(i) for i in chosen}),
        per_digit=per_digit, again=again, width=getattr(model.model, "width", None),
        curve=curve, history=history, n_train=loaded.card.n_train,
        trained_on=learning.augmentation_words(loaded.card.params),
        history_caption=learning.history_caption(history, _smoothing(model.model)) if history else None,
        single_view=single_view, tuned=loaded.card.finetuned_from, finetune_command=None if job.learned else shlex.join(
            ["digitlab", "finetune", "--model", str(model_path), "--dataset", data.name]),
    )
    write_text_atomic(out / "explain.json", json.dumps(doc, indent=2) + "\n")
    write_text_atomic(out / "explain.html", html)
