"""``digitlab evaluate --dataset NAME`` on a handwriting set, and ``digitlab finetune``.

Both print a short summary and write a page: the evaluation into ``--out`` (default ``reports/``),
the fine-tuned model as a new run folder whose report shows before → after.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Column, Table

from digitlab import terminal
from digitlab.terminal import escape

console = terminal.console()


def evaluate_on_handwriting(model: Path, name: str, out: Path, *, as_json: bool = False) -> Path:
    """Score the model at ``model`` on the handwriting set ``name``, print it, write its page; return the page.

    With ``as_json`` the page is written all the same, and what its ``metrics.json`` holds is printed, with the
    page's path, instead of the table."""
    from digitlab.data.handwriting import HandwritingSet
    from digitlab.fileio import atomic_folder
    from digitlab.handwriting_eval import samples_to_score, score_samples
    from digitlab.predict import unsure_threshold
    from digitlab.report_handwriting import write_evaluation
    from digitlab.runs import check_writable, now_utc, run_stamp
    from digitlab.store import load_model

    check_writable(out)
    store = HandwritingSet.open(name)
    loaded = load_model(Path(model))
    _check_size(loaded, name)
    samples, part = samples_to_score(store, loaded.card)
    score = score_samples(loaded.model, loaded.temperature, store, samples, model_id=loaded.id, part=part,
                          unsure_below=unsure_threshold(loaded.card), detector=loaded.detector)
    safe_id = re.sub(r"[^A-Za-z0-9._-]", "-", loaded.id)[:80]  # a card's id is text from a file: not a path
    with atomic_folder(out / f"{run_stamp(now_utc())}-{safe_id}-on-{name}") as staged:
        write_evaluation(score, store, staged.path, f"{loaded.card.model} trained on {loaded.card.dataset}")
    page = staged.final / "report.html"
    matches, differences = _against_the_run(loaded.card, score)
    if as_json:
        typer.echo(json.dumps({**score.to_dict(), "matches": matches, "differences": differences, "report": str(page),
                               "problems": list(store.problems)}, indent=2))
    else:
        print_score(score)
        if matches is not None:
            console.print(_said(loaded.card.metrics, differences))
        for line in store.problems:
            console.print(f"[yellow]{escape(line)}[/]")
        console.print(f"Report: [link=file://{page.resolve()}]{escape(str(page))}[/link]")
    if matches is False:  # as for a run on MNIST: exit 1 when the figures differ from those the run recorded
        raise typer.Exit(1)
    return page


def _against_the_run(card, score) -> tuple[bool | None, list[str]]:
    """For a run trained or fine-tuned on this set: whether its samples and errors match those it recorded (as
    `evaluate` says of a run on MNIST) and the keys that differ; ``(None, [])`` for a model of another dataset."""
    from digitlab.data.handwriting_io import held_out_digest

    recorded = card.metrics if card.dataset == score.set_name else {}
    if not isinstance(recorded.get("n_test"), int) or not isinstance(recorded.get("n_errors"), int):
        return None, []
    now = {"n_test": score.metrics.n_test, "n_errors": score.metrics.n_errors}
    differences = [key for key, value in now.items() if recorded[key] != value]
    tested = (card.split or {}).get("tested")  # as many samples, but not the same ones (one removed, one added)
    newer = card.created and any(s.created > card.created for s in score.samples)  # a card from before "tested"
    if "n_test" not in differences and (newer or isinstance(tested, str) and tested != held_out_digest(score.samples)):
        differences.insert(0, "samples")  # (an upgrade audit swapped one in an old run's and read "Matches")
    return not differences, differences


def _said(recorded: dict, differences: list[str]) -> str:
    """The line saying whether the figures match the run's, or why they may not (:func:`_against_the_run`)."""
    wrong = f"{recorded['n_errors']} error{'s' * (recorded['n_errors'] != 1)}"
    if not differences:
        return "[green]Matches the run's recorded figures exactly[/] (as many held-out samples, as many wrong)."
    if "n_test" in differences:
        return (f"The run recorded {wrong} of {recorded['n_test']:,}; the set has changed since (samples added or "
                "removed), so these figures differ.")
    if "samples" in differences:
        return (f"The run recorded {wrong} of {recorded['n_test']:,}; as many are held out now, but not the same "
                "samples (some removed, others added since), so these figures are not the run's.")
    return (f"[yellow]The run recorded {wrong} of as many samples[/]: the model answers differently here (another "
            "machine's arithmetic, say), or the set's samples changed.")


def print_score(score, before=None) -> None:
    """The accuracy and the per-writer table (with a before column when given)."""
    m = score.metrics
    console.print(f"{escape(score.model_id)} on {escape(score.set_name)} ({escape(score.part)}): "
                  f"accuracy [bold]{m.accuracy:.1%}[/], {m.n_errors} error{'s' * (m.n_errors != 1)} of {m.n_test:,}, "
                  f"95% CI {m.ci_low:.1%} – {m.ci_high:.1%}")
    if score.answered is not None:
        console.print(sure_line(score.answered))
    page = [kind for kind in ("not_a_digit", "unsure") if any(row.page and row.page[kind] for row in score.writers)]
    words = {"not_a_digit": 'page: "not a digit"', "unsure": 'page: "not sure"'}  # what each pupil would be told
    table = Table("writer", "samples", *(["before"] if before else []),
                  Column("accuracy" if not before else "after", no_wrap=True), *(words[kind] for kind in page))
    earlier = {row.writer: row for row in before.writers} if before else {}
    for row in score.writers:
        cells = [escape(row.writer), str(row.n)]
        if before:
            cells.append(f"{earlier[row.writer].accuracy:.1%}")
        table.add_row(*cells, f"{row.accuracy:.1%} ({row.errors} wrong)", *(str(row.page[kind]) for kind in page))
    console.print(table)


def sure_line(sure: dict) -> str:
    """How often the model would answer (not "unsure") and how often those answers are right: accuracy alone
    counts every guess, while the page and ``predict`` show a guess below the threshold as "unsure"."""
    right = f"right on {sure['accuracy']:.1%} of those" if sure["n_kept"] else "so it would answer none"
    flagged = sure.get("flagged")
    turned = "" if flagged is None else f"; its not-a-digit detector would turn away {flagged:,} of these digits"
    rest = "the rest" if sure["coverage"] < 1 else "none"  # "Sure of 320 (100.0%), ...; the rest ..." said a teacher
    page = sure.get("page")
    shown = "" if page is None else (
        f". On the page: {page['digit']:,} answered as a digit" + (f" (right on {page['right'] / page['digit']:.1%})"
                                                                   if page["digit"] else "")
        + f", {page['not_a_digit']:,} \"not a digit\", {page['unsure']:,} \"not sure\"")
    return (f"Sure of {sure['n_kept']:,} ({sure['coverage']:.1%}), {right}; "
            f"{rest} it would call unsure (sure from {sure['sure_from']}){turned}{shown}")


def _check_size(loaded, name: str) -> None:
    from digitlab.errors import DigitlabError

    if tuple(loaded.image_shape) != (28, 28):
        shape = "×".join(map(str, loaded.image_shape))
        raise DigitlabError(f"the model takes {shape} images but handwriting set {name!r} holds 28×28 ones; "
                            "use a model trained on MNIST (`digitlab run --dataset mnist --model cnn`)")


def finetune(
    model: Path = typer.Option(..., "--model", "-m", help="A run folder (or its model file) of a 28×28 model, e.g. the MNIST CNN."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="The handwriting set to fine-tune to (`digitlab data info`)."),
    out: Path = typer.Option(Path("runs"), "--out", "-o", help="Where the new run folder goes."),
    seed: int = typer.Option(42, "--seed", min=0, max=2**32 - 1,
                             help="Seed of the split (as `data export` and `run` take it) and of the fine-tuning."),
    test_size: Optional[float] = typer.Option(
        None, "--test-size", help="Share of the set (of its writers, when it has several) held out to measure (default 0.2)."),
    hold_out: Optional[List[str]] = typer.Option(
        None, "--hold-out", metavar="WRITER",
        help="A writer to hold out and measure on (repeatable), instead of --test-size; every other writer trains."),
) -> None:
    """Fine-tune a saved model to your handwriting; write a new run whose report shows before → after.

    The set's training part (whole writers when it has several) is learned with MNIST replayed beside it,
    so the model does not forget MNIST; both models are measured on the held-out part and on MNIST's test set.
    """
    from digitlab.finetune_run import finetune_run

    with terminal.spinner(console, "fine-tuning…") as status:
        result = finetune_run(model, dataset, out=out, seed=seed, test_size=test_size, hold_out=hold_out,
                              step=lambda text: status.update(f"{text}…"))
    b, a = result.before.metrics, result.after.metrics
    console.print(f"Fine-tuned on {result.n_train:,} samples of {escape(dataset)} in {result.seconds:.1f} s.")
    console.print(f"On {escape(result.after.part)}: {b.accuracy:.1%} → [bold]{a.accuracy:.1%}[/] "
                  f"({b.n_errors} → {a.n_errors} error{'' if a.n_errors == 1 else 's'}); "
                  f"McNemar: {escape(result.mcnemar.verdict)}")
    if result.mcnemar.only_first_right > result.mcnemar.only_second_right:  # worse: for sure, or perhaps by chance
        console.print("[bold yellow]Fine-tuning made it worse on the held-out samples[/]: keep the model you had, "
                      "or collect more samples and try again" if result.mcnemar.significant else
                      "A few more held-out samples wrong than before, too few to tell from chance: collect more "
                      "samples before you choose between the two")
    if b.n_errors == 0:
        console.print(nothing_to_gain(model, dataset))
    console.print(f"On MNIST's test set: {result.mnist_before.accuracy:.2%} → {result.mnist_after.accuracy:.2%}")
    print_score(result.after, before=result.before)
    page = result.folder / "report.html"
    console.print(f"New run: {escape(str(result.folder))}\nReport: [link=file://{page.resolve()}]{escape(str(page))}[/link]")


def nothing_to_gain(model: Path, dataset: str) -> str:
    """What to do when the held-out samples were all read right before fine-tuning: a learner read "100.0% →
    100.0%" on the one writer the default split held out, and took it that fine-tuning does nothing."""
    import shlex

    return ("[yellow]The held-out samples were all read right before fine-tuning[/], so they cannot show a gain: "
            "hold out a writer it reads less well with --hold-out NAME, or collect more samples (each writer's "
            "accuracy: "
            f"`digitlab evaluate --model {escape(shlex.quote(str(model)))} --dataset {escape(shlex.quote(dataset))}`)")
