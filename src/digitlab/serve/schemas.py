"""The API's request and response bodies, declared once: FastAPI validates and documents them.

Examples
--------
>>> PixelsBody(pixels=[[0] * 28] * 28).pixels[0][:3]
[0.0, 0.0, 0.0]
>>> from pydantic import ValidationError
>>> try:
...     PixelsBody(pixels=[[0] * 28] * 27)
... except ValidationError as exc:
...     print(exc.errors()[0]["msg"])
Value error, pixels must be 28 rows of 28 numbers from 0 to 255; got shape 27×28
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from digitlab.data.handwriting_sample import SOURCES
from digitlab.data.images import prepare_pixels
from digitlab.errors import DigitlabError
from digitlab.notdigit import UNLIKE_RATE

PICTURE = ("PNG, JPEG, BMP, GIF, WebP or TIFF; at most 5 MiB and 4096×4096 pixels (a JPEG up to 16384 a side is "
           "read at 1/2 to 1/8 of its size where that brings it within 4096 with each side kept at least 1024)")
"""What a picture sent to the API may be, for the schema's descriptions."""

__all__ = ["ErrorResponse", "ModelInfo", "ModelsResponse", "PixelsBody", "PredictResponse", "ReadDigit",
           "ReadSeparator", "ReadResponse", "SampleInfo", "SampleRemoved", "SampleSaved", "SamplesResponse", "TopDigit"]

GreyLevel = Annotated[float, Field(ge=0, le=255)]
Row = Annotated[list[GreyLevel], Field(min_length=28, max_length=28)]


class PixelsBody(BaseModel):
    """The body of `POST /api/predict/pixels`."""

    model_config = ConfigDict(extra="forbid")  # a misspelt "Prepared" was dropped, and the grid prepared again

    pixels: Annotated[list[Row], Field(
        min_length=28, max_length=28,
        description="28 rows of 28 numbers from 0 to 255, either polarity (ink light or dark); "
                    "fractions are rounded; a grid scaled to 0-1 is refused. Cropped, scaled and centred like MNIST "
                    "before the model sees it.",
    )]

    @field_validator("pixels", mode="before")
    @classmethod
    def _a_28_by_28_grid(cls, value: Any) -> list[list[int]]:
        """One line that says what is wrong (shape, ragged rows, non-numbers, NaN, range) first;
        the type above then only documents the grid in ``/openapi.json``."""
        try:
            grid = prepare_pixels(value)
        except DigitlabError as exc:
            raise ValueError(str(exc)) from None
        if 0 < np.max(np.asarray(value, dtype=np.float64)) <= 1:  # was told "no ink found: the image is blank"
            raise ValueError("pixels are read on a 0-255 scale, and these all lie between 0 and 1, as if scaled "
                             "to 0-1: multiply them by 255")
        return grid.tolist()

    prepared: StrictBool = Field(
        default=False, description="True: `pixels` is already the model's input, as `?input=true` answers it (light "
                                   "ink on dark, cropped, scaled and centred like MNIST), and the model sees it as it "
                                   "is, not prepared a second time; for a model of 28×28 images (else 422).")


class TopDigit(BaseModel):
    """One of the most probable digits."""

    digit: int = Field(ge=0, le=9)
    probability: float


class PredictResponse(BaseModel):
    """What the model says about one picture."""

    digit: int = Field(ge=0, le=9, description="The most probable digit: the model's guess, there even when `kind` "
                                               "is 'not_a_digit' or 'unsure'; read `kind` first.")
    probability: float = Field(description="Its probability (among the ten digits: no answer for 'not a digit').")
    top: list[TopDigit] = Field(description="The top_k digits, most probable first.")
    probabilities: list[float] = Field(description="All ten probabilities; index d is digit d.")
    unsure: bool = Field(description="True when the top probability is below the model's 'unsure' threshold "
                                     "(whatever `kind` says of the picture: a 'not_a_digit' may be a sure guess) "
                                     "by more than rounding (1e-9). The threshold is chosen on held-out images: "
                                     "the lowest at which the answers there were ≥ 99.5% right (on writing unlike "
                                     "the training data, sure answers are right less often); 0.5 for a model saved "
                                     "without calibration.")
    sure_from: float = Field(ge=0, le=1, description="That threshold: the top probability this model needs to "
                                                     "answer 'digit' (show it beside an 'unsure' answer).")
    sure_right: float | None = Field(description="How often the answers from `sure_from` on were "
                                     "right on held-out images; null when no such figure is this model's "
                                     "(uncalibrated; fine-tuned: it keeps its base's threshold; sure of fewer than "
                                     "100 held-out images).")
    model_id: str = Field(description="The id of the model card that answered.")
    calibrated: bool = Field(description="True when the probabilities went through the model's fitted "
                                         "temperature; False for a model saved before digitlab calibrated.")
    kind: Literal["digit", "unsure", "not_a_digit"] = Field(
        description="How to show the answer: 'digit'; 'unsure' (a digit, but the top probability is under the "
                    "threshold: show the top two); 'not_a_digit' (the picture does not look like a digit: show none).")
    nondigit_score: float | None = Field(
        description="The not-a-digit detector's score, 0..1 (above the model's threshold: 'not_a_digit'); "
                    "null for a model saved without a detector.")
    unlike_a_digit: bool = Field(
        description=f"True for a 'digit' or 'unsure' answer whose detector score only "
                                   f"{round(100 * UNLIKE_RATE)}% of real digits reach: it might not be a digit (say "
                                   "so beside the answer).")
    input: list[list[int]] | None = Field(
        default=None, description="The prepared image the model saw (H×W, 0..pixel_max); only when the request "
                                  "asks for it with `?input=true`, else absent.")
    pixel_max: int = Field(description="Brightest value of `input`: 255 for MNIST models, 16 for 8×8 ones.")
    saliency: list[list[float]] | None = Field(
        default=None, description="What the model looks at (only with `?explain=true`, else absent): H×W, the "
                                  "prepared image's shape, signed and scaled to −1..1 — positive where a pixel "
                                  "speaks for the answer (`saliency_digit`), negative against it; null for a model "
                                  "without a fast map.")
    saliency_digit: int | None = Field(
        default=None, description="The digit `saliency` explains: the answer's, or `explain_digit`'s (only with "
                                  "`?explain=true`); null when there is no map.")
    saliency_against: int | None = Field(
        default=None, description="With `explain_digit` another than the answer: the answer, which the map weighs it "
                                  "against (positive: for `saliency_digit` rather than the answer; negative: for the "
                                  "answer rather than it); null for the answer's own map.")
    saliency_method: str | None = Field(
        default=None, description="How `saliency` was made: 'Integrated Gradients' (the CNN), 'weight × input' "
                                  "(linear models), or null (no fast map for this model); only with `?explain=true`.")
    saliency_note: str | None = Field(
        default=None, description="Why `saliency` is null: a model without a fast map (kNN, SVM, forest, MLP), "
                                  "and where its maps are, or a CNN without Captum; null when there is a map. Only "
                                  "with `?explain=true`.")
    activations: list[list[list[int]]] | None = Field(
        default=None, description="The CNN's first convolution layer for this picture (only with `?explain=true`; "
                                  "null for other models): its most active channels, the most active first, each "
                                  "a small 2-D grid of 0..255 (14×14 for 28×28 input).")
    filters: int | None = Field(
        default=None, description="How many filters the CNN's first layer has, of which `activations` shows the "
                                  "most active (only with `?explain=true`; null for other models).")
    milliseconds: float = Field(description="Server time spent on this prediction.")


class ReadDigit(BaseModel):
    """One digit found in the picture, and what the model read there."""

    box: list[int] = Field(min_length=4, max_length=4,
                           description="[x0, y0, x1, y1] in the picture's own pixels (right and bottom excluded).")
    digit: int = Field(ge=0, le=9, description="The most probable digit.")
    shown: str = Field(description="How the number text shows it: the digit, or '?' when kind is not 'digit'.")
    probability: float = Field(description="Its probability (calibrated when the response's `calibrated` is true).")
    top: list[TopDigit] = Field(description="The three most probable digits, most probable first.")
    kind: Literal["digit", "unsure", "not_a_digit"] = Field(
        description="'digit'; 'unsure' (top probability under the model's threshold); 'not_a_digit' (the mark "
                    "does not look like a digit). Anything but 'digit' is shown as '?'.")
    line: int = Field(ge=0, description="The line it is on, 0 for the top one.")
    unlike_a_digit: bool = Field(description="A digit the detector finds as unusual as few real "
                                 "ones: it is read, but might not be a digit (say so beside it).")


class ReadSeparator(BaseModel):
    """A separator found between (or before) the digits: not read by the model, known by its shape."""

    symbol: Literal[".", ",", "-", ":"] = Field(description="A point, a comma, a minus or dash, a colon (a slash "
                                                            "is read as the 1 it looks like).")
    box: list[int] = Field(min_length=4, max_length=4,
                           description="[x0, y0, x1, y1] in the picture's own pixels (right and bottom excluded).")
    line: int = Field(ge=0, description="The line it is on, 0 for the top one.")


class ReadResponse(BaseModel):
    """A whole number read from one picture."""

    text: str = Field(description="The digits and separators in reading order, '?' for a doubtful digit; two "
                                  "numbers on a line separated by a space, lines by a new line (e.g. '4071', '87 128', "
                                  "'12\\n34', '3.14', '7:30', '-40').")
    digits: list[ReadDigit] = Field(description="Each digit found, in reading order: lines top to bottom, "
                                                "each left to right.")
    separators: list[ReadSeparator] = Field(description="Each separator in the text (. , - :), in reading "
                                                        "order.")
    width: int = Field(description="The picture's width in pixels (the boxes' frame).")
    height: int = Field(description="The picture's height in pixels.")
    model_id: str = Field(description="The id of the model card that answered.")
    sure_from: float = Field(ge=0, le=1, description="The top probability a digit needed not to be 'unsure'.")
    dots: int = Field(ge=0, description="How many separators are points ('.': a decimal point or a thousands "
                                        "dot).")
    calibrated: bool = Field(description="True when the probabilities went through the model's fitted temperature; "
                                         "False for a model saved uncalibrated (its percentages are its own).")
    milliseconds: float = Field(description="Server time spent reading the picture.")


class ErrorResponse(BaseModel):
    """Every 4xx and 5xx answer."""

    error: str = Field(description="What was wrong, in one line.")


class ModelInfo(BaseModel):
    """One saved model."""

    id: str
    model: str
    dataset: str
    image_shape: list[int]
    pixel_max: int
    accuracy: float | None = Field(description="Test accuracy recorded when it was trained, on its own dataset.")
    n_test: int | None = Field(description="How many test images that accuracy was measured on (a fine-tuned run's "
                                           "held-out writers may be a few dozen).")
    ci95: list[float] | None = Field(description="The accuracy's 95% confidence interval (Wilson).")
    set: str | None = Field(None, description="A fine-tuned run's handwriting set, whose held-out samples "
                                              "`accuracy` was measured on.")
    accuracy_before: float | None = Field(None, description="A fine-tuned run's base model on those same samples.")
    mnist_accuracy: float | None = Field(None, description="A fine-tuned run's accuracy on MNIST's test set.")
    path: str
    active: bool


class ModelsResponse(BaseModel):
    """The model being served and the other saved ones."""

    active: str = Field(description="The id of the model being served.")
    models: list[ModelInfo] = Field(description="The model being served first, then the others under the runs folder.")


PerDigit = Annotated[list[int], Field(min_length=10, max_length=10)]


class SampleInfo(BaseModel):
    """One saved sample of a handwriting set."""

    id: str = Field(description="The sample's id (`DELETE /api/samples/{id}` removes it).")
    label: int = Field(ge=0, le=9, description="The digit the picture shows, as the person said.")
    writer: str | None = Field(description="Who wrote it; null when no name was given.")
    source: Literal[SOURCES] = Field(  # every source a sample can have, so that the two never part
        description="Where it came from: the page, a photo sent to it, or `digitlab data import` (one picture, or a "
                    "sheet cut into digits).")
    created: str = Field(description="When it was saved (UTC, ISO 8601).")


class SamplesResponse(BaseModel):
    """How many samples the handwriting set being collected holds."""

    name: str = Field(description="The handwriting set's name (`digitlab serve --collect NAME`).")
    total: int = Field(ge=0, description="Samples in the set.")
    counts: PerDigit = Field(description="Samples of each digit; index d is digit d.")
    named_writers: int = Field(ge=0, description="How many writers with a name the set holds (not who: their names "
                                                 "are not given to every device on the network).")
    writer: str | None = Field(description="The writer `writer_counts` counts; null when none was asked for.")
    writer_counts: PerDigit | None = Field(description="That writer's samples of each digit; null without a writer.")


class SampleSaved(SamplesResponse):
    """A sample saved (201), or the same picture found already in the set (200, `added` false)."""

    sample: SampleInfo
    added: bool = Field(description="False when this exact picture was already in the set: nothing new was saved.")


class SampleRemoved(SamplesResponse):
    """The sample just removed, and the set's counts without it."""

    sample: SampleInfo
