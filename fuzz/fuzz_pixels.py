"""Fuzz the JSON pixel grid: any JSON document gives a ``uint8`` grid or one clear line.

Run: ``python fuzz/fuzz_pixels.py -max_total_time=60 CORPUS_DIR [SEED_DIR]`` (``fuzz/run.py`` does this).

Each input is a request body as the API receives it. It is parsed with :func:`json.loads` (which
the API's body parser stands in for: bytes that are not JSON are refused there, before
:func:`prepare_pixels` runs), then ``{"pixels": grid}`` or a bare grid is validated against
28×28, 8×8 and the grid's own apparent shape, so that small grids reach the value checks too.
An accepted grid must be exactly the numbers 0-255 given, rounded, and never hold ``true`` or
``false``.
"""

from __future__ import annotations

import json

import numpy as np

import harness

with harness.instrumented("digitlab"):
    from digitlab.data.images import prepare_pixels

_SHAPES = [(28, 28), (8, 8)]


def _plain_grid(grid: object, shape: tuple[int, int]) -> bool:
    """``shape`` rows of ints or floats (never bools) from 0 to 255: what must be accepted."""
    return (
        isinstance(grid, list)
        and len(grid) == shape[0]
        and all(isinstance(row, list) and len(row) == shape[1] for row in grid)
        and all(type(v) in (int, float) and 0 <= v <= 255 for row in grid for v in row)
    )


def test_one_input(data: bytes) -> None:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):  # not JSON (or too deep, or an int of > 4300 digits)
        return
    grid = document.get("pixels") if isinstance(document, dict) else document
    shapes = list(_SHAPES)
    if isinstance(grid, list) and grid and isinstance(grid[0], list) and grid[0]:
        own = (len(grid), len(grid[0]))
        if own not in shapes and max(own) <= 64:
            shapes.append(own)
    for shape in shapes:
        out = harness.answers_or_refuses(prepare_pixels, grid, shape)
        plain = _plain_grid(grid, shape)
        if out is None:
            if plain:
                raise AssertionError(f"refused a plain {shape} grid of numbers 0-255")
            continue
        if not plain:
            raise AssertionError(f"accepted as {shape} something that is not a grid of numbers 0-255")
        expected = np.rint(np.array(grid, dtype=np.float64))  # a plain grid converts safely
        if out.dtype != np.uint8 or out.shape != shape or not np.array_equal(out, expected):
            raise AssertionError(f"the grid came back changed: {out.dtype} {out.shape}")


if __name__ == "__main__":
    harness.main(test_one_input)
