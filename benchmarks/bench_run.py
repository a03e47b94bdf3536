"""Wall time of the lesson's script against `digitlab run`, each a fresh process, alternated.

Prints the median over --repeats runs of each and the ratio digitlab / lesson (goal: <= 1.0).
`digitlab run` does more: six figures, metrics.json, predictions.csv, the saved model and report.html.

    python benchmarks/bench_run.py --repeats 7
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="bench-run-"))
    lesson = [sys.executable, str(HERE / "lesson_07.py"), str(out / "lesson")]
    digitlab = [sys.executable, "-m", "digitlab", "run", "--out", str(out / "runs")]
    timed(lesson), timed(digitlab)  # warm the file cache once
    lesson_times, digitlab_times = [], []
    for _ in range(args.repeats):
        lesson_times.append(timed(lesson))
        digitlab_times.append(timed(digitlab))
    lesson_median = statistics.median(lesson_times)
    digitlab_median = statistics.median(digitlab_times)
    print(f"lesson script  median {lesson_median:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in lesson_times)})")
    print(f"digitlab run   median {digitlab_median:6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in digitlab_times)})")
    print(f"ratio digitlab / lesson: {digitlab_median / lesson_median:.2f}  (goal <= 1.00)")


if __name__ == "__main__":
    main()
