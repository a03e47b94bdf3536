"""Fuzz the IDX reader: any file, raw or gzipped, reads as the array its header declares or is refused.

Run: ``python fuzz/fuzz_idx.py -max_total_time=60 CORPUS_DIR [SEED_DIR]`` (``fuzz/run.py`` does this).

The first byte of each input chooses how it is stored (its low bit: gzipped or raw), the rest
is the file. Each file is read with :func:`read_idx` and :func:`read_idx_bytes`, which must agree
on answering or refusing; a file that reads is read again memory-mapped, to the same array.
"""

from __future__ import annotations

import gzip
import os
import tempfile
from pathlib import Path

import harness

with harness.instrumented("digitlab"):
    from digitlab.data.idx import MAX_DIMS, MAX_PAYLOAD_BYTES, read_idx, read_idx_bytes

_FOLDER = Path(tempfile.mkdtemp(prefix="fuzz-idx-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
_RAW = _FOLDER / "input-idx"
_GZ = _FOLDER / "input-idx.gz"


def test_one_input(data: bytes) -> None:
    if not data:
        return
    gzipped, content = data[0] & 1, data[1:]
    path = _GZ if gzipped else _RAW
    path.write_bytes(gzip.compress(content, compresslevel=1, mtime=0) if gzipped else content)

    array = harness.answers_or_refuses(read_idx, path)
    whole = harness.answers_or_refuses(read_idx_bytes, path)
    if (array is None) != (whole is None):
        raise AssertionError(f"the readers disagree: read_idx answered {array is not None}, "
                             f"read_idx_bytes answered {whole is not None}")
    if array is None:
        return
    mapped = harness.answers_or_refuses(read_idx, path, mmap=True)
    if mapped is None:
        raise AssertionError("read_idx(mmap=True) refused a file that read_idx read")
    if not (1 <= array.ndim <= MAX_DIMS and array.dtype.isnative and array.nbytes <= MAX_PAYLOAD_BYTES):
        raise AssertionError(f"read an array the reader should refuse: {array.dtype} {array.shape}")
    if whole != content:
        raise AssertionError("read_idx_bytes does not return the file's uncompressed bytes")
    if mapped.shape != array.shape or mapped.tobytes() != array.tobytes():
        raise AssertionError("the memory-mapped read differs from the plain one")
    del mapped  # release the map before the file is rewritten


if __name__ == "__main__":
    harness.main(test_one_input)
