"""Run folders: where they go, what they are called, and finding the newest.

A run is a folder under ``runs/`` (or ``--out``) named ``<UTC time>-<dataset>-<model>``, written
atomically by :func:`digitlab.fileio.atomic_folder`. This module holds the small helpers every
command that writes or reads run folders shares.

Examples
--------
>>> from datetime import datetime, timezone
>>> run_stamp(datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
'20260102T030405Z'
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

from digitlab.card import CARD_NAME
from digitlab.errors import DigitlabError

__all__ = ["check_writable", "find_latest_model", "made_for_run", "model_notes", "model_or_newest", "now_utc",
           "run_stamp"]


def now_utc() -> datetime:
    """The current time in UTC: runs are named and stamped with it."""
    return datetime.now(timezone.utc)


def run_stamp(when: datetime) -> str:
    """The time part of a run folder's name, e.g. ``20260102T030405Z``."""
    return when.strftime("%Y%m%dT%H%M%SZ")


COMMAND: list[str] = []
"""The command line being run (``digitlab run …``), set by :func:`digitlab.cli.run_command_line`; empty when the
library is called from a program of one's own (its ``sys.argv`` is not the run's: a notebook's kernel, a script)."""


def check_writable(out: Path, option: str = "--out", fix: str = "choose a writable folder") -> None:
    """Fail early, with one line (``fix``: what to do), when ``out`` cannot hold a run folder."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DigitlabError(f"{option} {out}: exists and is not a folder; choose a folder")
    if out.is_symlink() and not out.exists():  # it said "cannot write there (File exists)"
        raise DigitlabError(f"{option} {out}: a link to {os.readlink(out)}, which does not exist; create that folder "
                            "or choose another")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out, prefix=".probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise DigitlabError(f"{option} {out}: cannot write there ({exc.strerror or exc}); {fix}") from None


@contextmanager
def made_for_run(out: Path, writes: bool = True, option: str = "--out") -> Iterator[None]:
    """:func:`check_writable` for a run's ``--out``; when the run then fails, the folders made for it are removed
    again while they are empty: a failed run leaves nothing, not an empty ``--out`` (an engineer's torchrun run
    killed mid-training). ``writes=False`` (a torchrun process other than rank 0, which writes no run): nothing."""
    out = Path(out)
    made = [p for p in (out, *out.parents) if not p.exists()] if writes else []  # deepest first
    try:
        if writes:  # in here: folders it made before its probe failed (a full disk) go too (a reviewer)
            check_writable(out, option)
        yield
    except BaseException:
        for folder in made:
            try:
                folder.rmdir()
            except OSError:  # something is in it: keep it and those above
                break
        raise


def find_latest_model(runs_dir: Path = Path("runs")) -> Path | None:
    """The newest run folder under ``runs_dir`` that holds a model card, or None."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return None
    candidates = [p for p in runs_dir.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and (p / CARD_NAME).is_file()]
    if not candidates:
        return None
    return max(candidates, key=lambda p: (_created(p / CARD_NAME), (p / CARD_NAME).stat().st_mtime, p.name))


def _created(card: Path) -> str:
    """When the card says its model was saved (UTC, ISO 8601: they sort as text); for a card that cannot say (not
    this user's to read, damaged), the time its run folder's name begins with, else "". Newest by the card's own
    time, not its file's: runs copied with ``cp -r`` took the copy's time, and an older run came up as the newest (a
    learner); a newer run whose card a student could not read was passed over for the lesson's 8×8 model (a school's
    audit), where its load now says why it cannot be used.

    >>> _created(Path("runs/20261204T103755Z-mnist-logreg/model.json"))  # no such file here: the name's time
    '2026-12-04T10:37:55+00:00'
    """
    import json

    try:
        with open(card, "rb") as handle:
            created = json.loads(handle.read(1 << 20)).get("created", "")
            return created if isinstance(created, str) else ""
    except (OSError, ValueError, AttributeError, RecursionError):
        pass
    try:  # the folder's name begins with run_stamp's time
        return datetime.strptime(card.parent.name[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).isoformat()
    except ValueError:
        return ""


def model_or_newest(model: Path | None, runs_dir: Path, say: Callable[[str], None] = lambda _: None) -> Path:
    """``model`` when given, else the newest run under ``runs_dir`` (and ``say`` names it); one clear
    line when there is none: what every command taking ``--model`` does."""
    if model is not None:
        return Path(model)
    newest = find_latest_model(runs_dir)
    if newest is None:
        raise DigitlabError(f"no trained model in {runs_dir}/; run `digitlab run` first or pass --model PATH")
    say(f"using the newest model: {newest}")
    return newest


def model_notes(loaded: Any) -> list[str]:
    """What a person should know before trusting a loaded model's answers on their own pictures: that it was saved
    uncalibrated or with no not-a-digit detector (by ``compare``, or an old run), or is a model of the 8×8 digits,
    sure of drawings it gets wrong (``benchmarks/bench_handwriting.py``)."""
    from digitlab.notdigit import MIN_HELD_DIGITS

    notes = []
    missing = [text for text, absent in (
        ("calibrated (its percentages are its own, often over- or under-confident)", loaded.card.calibration is None),
        ("given a not-a-digit detector (any picture gets a digit)", loaded.detector is None)) if absent]
    n_train = loaded.card.n_train if isinstance(loaded.card.n_train, int) else None
    if missing and n_train is not None and n_train < MIN_HELD_DIGITS:  # `run` itself would leave them out again
        notes.append(f"this model was not {' nor '.join(missing)}: with only {n_train:,} training images too few "
                     "could be held out to set them; train on more images for them")
    elif missing:
        notes.append(f"this model was not {' nor '.join(missing)}: `compare` and `sweep` save theirs so, and digitlab "
                     f"did before — `digitlab run --dataset {loaded.card.dataset} --model {loaded.card.model}` trains "
                     "one that is")
    if tuple(loaded.card.image_shape) == (8, 8):
        notes.append("this is a model of scikit-learn's 8×8 digits: each picture is shrunk to 8×8 pixels, and it reads "
                     "drawings and photos far less well than its test accuracy says, its percentages overstating — "
                     f"{', then '.join(_steps_to_a_cnn())} trains one for your own pictures")
    return notes


def _steps_to_a_cnn() -> list[str]:
    """The commands that train an MNIST CNN here: installing PyTorch and fetching MNIST first where needed."""
    import importlib.util

    from digitlab.data.mnist import is_cached

    steps = [] if importlib.util.find_spec("torch") else ["`pip install 'digitlab[cnn]'` (in a clone: `make install`)"]
    if not is_cached():
        steps.append("`digitlab data fetch mnist`")
    return [*steps, "`digitlab run --dataset mnist --model cnn`"]
