"""`digitlab data prepare SET`: a set's samples prepared again from their pictures as they arrived, so that an
improved preparation (a bold pen's strokes narrowed) reaches the samples saved before it."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from conftest import run_cli
from digitlab.data import images as preparation
from digitlab.data.handwriting import HandwritingSet
from digitlab.data.images import prepare_digit, read_image, stroke_width


def _seven(width: int) -> bytes:
    picture = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(picture).line([(100, 70), (300, 70), (160, 340)], fill=0, width=width, joint="curve")
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def test_samples_saved_before_the_narrowing_are_prepared_again_and_the_rest_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITLAB_DATA", str(tmp_path / "data"))
    original = preparation._even_strokes
    with monkeypatch.context() as before:  # saved by a digitlab that only widened strokes
        before.setattr(preparation, "_even_strokes",
                       lambda ink, box, widths: original(ink, box, (*widths[:2], math.inf, math.inf)))
        store = HandwritingSet.open("class", create=True)
        bold, _ = store.add(_seven(120), 7, writer="carys")
        fine, _ = store.add(_seven(16), 7, writer="ben")
        cut_bold = prepare_digit(read_image(_seven(110)), (28, 28), 255)  # as a sheet's cut of a bold 7
        sheet, _ = store.add(_seven(110), 7, writer="carys", source="sheet", prepared=cut_bold)
        cut_fine = np.roll(prepare_digit(read_image(_seven(18)), (28, 28), 255), 1, axis=1)  # its own ink, not the crop
        kept, _ = store.add(_seven(18), 7, writer="ben", source="sheet", prepared=cut_fine)
    prepared = lambda sample: np.asarray(Image.open(store.folder / "prepared" / f"{sample.id}.png"))  # noqa: E731
    saved = {s.id: prepared(s) for s in (bold, fine, sheet, kept)}
    assert stroke_width(saved[bold.id]) > 4.5
    result = run_cli("data", "prepare", "class", env={"DIGITLAB_DATA": str(tmp_path / "data")})
    assert result.returncode == 0, result.stderr
    assert "class: 2 of 4 samples prepared differently now" in result.stdout
    assert stroke_width(prepared(bold)) < stroke_width(saved[bold.id]) - 0.5  # narrowed, as a save now would
    assert np.array_equal(prepared(bold), prepare_digit(read_image(_seven(120)), (28, 28), 255))
    assert np.array_equal(prepared(fine), saved[fine.id])
    assert stroke_width(prepared(sheet)) < stroke_width(saved[sheet.id]) - 0.5  # a sheet's bold digit: narrowed
    assert np.array_equal(prepared(kept), saved[kept.id])  # a sheet's other digits: as they were cut
    again = run_cli("data", "prepare", "class", env={"DIGITLAB_DATA": str(tmp_path / "data")})
    assert "class: all 4 samples are prepared as today's preparation does; nothing changed" in again.stdout
    assert [s.id for s in HandwritingSet.open("class").samples()] == [bold.id, fine.id, sheet.id, kept.id]
