"""Run every fuzz target for a set time and print executions and crashes per target (``make fuzz``).

Usage::

    python fuzz/run.py [TARGET ...]          # default: every fuzz/fuzz_*.py
    FUZZ_SECONDS=600 python fuzz/run.py idx  # longer, one target

Environment:

- ``FUZZ_SECONDS``: how long each target runs (default 60); ``FUZZ_SECONDS_<TARGET>`` (e.g.
  ``FUZZ_SECONDS_IMAGE=600``) overrides it for one target;
- ``FUZZ_RUNS``: stop a target after this many executions instead, if that comes first
  (``FUZZ_RUNS=1000000 FUZZ_SECONDS=3600`` gives each target a million executions);
- ``FUZZ_OUTPUT``: where everything goes (default ``fuzz-output/`` in the repository, which git ignores).

What it does, under ``$FUZZ_OUTPUT``:

1. ``seeds/<target>/``: the seed corpus, rebuilt from real files by ``fuzz/make_corpus.py``;
2. ``corpus/<target>/``: the working corpus, kept between runs, so each run starts where the last
   stopped (delete it to start afresh);
3. ``crashes/<target>/``: what libFuzzer saves when the contract breaks (``crash-*``, ``timeout-*``,
   ``oom-*``); replay one with ``python fuzz/fuzz_<target>.py FILE``;
4. ``logs/<target>.log``: libFuzzer's full output.

A target stops at its first crash (fix it at the root, then run again). The exit status is 1 when
any target crashed or failed to start, else 0.

Targets are found by name: ``fuzz/fuzz_<target>.py``, seeded by ``SEEDS[<target>]`` in
``make_corpus.py`` when there is an entry. The model card's target will be ``fuzz/fuzz_card.py``
with ``card_seeds`` there; nothing here needs to change for it.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import make_corpus  # noqa: E402

#: libFuzzer flags for every target: a slow input (> 20 s) or one over 2 GB is a finding too.
FLAGS = ["-timeout=20", "-rss_limit_mb=2048", "-print_final_stats=1"]


def targets(names: list[str]) -> list[str]:
    known = sorted(path.stem.removeprefix("fuzz_") for path in HERE.glob("fuzz_*.py"))
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"unknown fuzz target {', '.join(unknown)}; choose from: {', '.join(known)}")
    return names or known


def _whole_number(variable: str, default: str | None) -> int | None:
    value = os.environ.get(variable, default)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"fuzz: {variable} must be a whole number, not {value!r}") from None


def run_target(name: str, seconds: int, runs: int | None, out: Path) -> dict:
    corpus, seeds = out / "corpus" / name, out / "seeds" / name
    crashes, log = out / "crashes" / name, out / "logs" / f"{name}.log"
    for folder in (corpus, seeds, crashes, log.parent):
        folder.mkdir(parents=True, exist_ok=True)
    before = set(crashes.iterdir())
    command = [
        sys.executable, str(HERE / f"fuzz_{name}.py"), f"-max_total_time={seconds}", *FLAGS,
        *([f"-runs={runs}"] if runs is not None else []),
        f"-artifact_prefix={crashes}/", str(corpus), str(seeds),
    ]
    started = time.monotonic()
    with open(log, "wb") as sink:
        code = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT, cwd=REPO).returncode
    elapsed = time.monotonic() - started
    text = log.read_text(errors="replace")
    stat = dict(re.findall(r"^stat::(\w+):\s*(\d+)", text, re.MULTILINE))
    found = sorted(set(crashes.iterdir()) - before)
    return {
        "target": name,
        "executions": int(stat.get("number_of_executed_units", 0)),
        "per_second": int(stat.get("average_exec_per_sec", 0)),
        "seconds": elapsed,
        "corpus": sum(1 for _ in corpus.iterdir()),
        "crashes": found,
        "code": code,
        "log": log,
    }


def main(argv: list[str]) -> int:
    if importlib.util.find_spec("atheris") is None:
        print("fuzz: atheris is not installed; `pip install atheris` (wheels exist for Linux x86-64; "
              "elsewhere it builds from source and needs clang with libFuzzer)", file=sys.stderr)
        return 2
    seconds = _whole_number("FUZZ_SECONDS", "60")
    runs = _whole_number("FUZZ_RUNS", None)
    out = Path(os.environ.get("FUZZ_OUTPUT", REPO / "fuzz-output")).resolve()
    names = targets(argv)
    counts = make_corpus.build(out / "seeds", [name for name in names if name in make_corpus.SEEDS])
    print(f"seed corpus in {out / 'seeds'}: " + ", ".join(f"{t} {n}" for t, n in counts.items()), flush=True)

    failed = False
    print(f"{'target':<10} {'executions':>12} {'exec/s':>8} {'seconds':>8} {'corpus':>7}  crashes", flush=True)
    for name in names:
        result = run_target(name, _whole_number(f"FUZZ_SECONDS_{name.upper()}", str(seconds)), runs, out)
        crashes = result["crashes"]
        if crashes:
            verdict = f"{len(crashes)}: " + ", ".join(str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
                                                       for path in crashes)
        elif result["code"] != 0:
            verdict = f"the fuzzer exited with {result['code']}; see {result['log']}"
        else:
            verdict = "0"
        failed |= bool(crashes) or result["code"] != 0
        print(f"{name:<10} {result['executions']:>12,} {result['per_second']:>8,} {result['seconds']:>8.0f} "
              f"{result['corpus']:>7}  {verdict}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
