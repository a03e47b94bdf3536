"""digitlab: train, evaluate, explain and serve handwritten-digit classifiers.

The package follows the lesson's five phases, one module each::

    >>> from digitlab.data import load_dataset
    >>> from digitlab.train import train
    >>> from digitlab.evaluate import evaluate_model
    >>> dataset = load_dataset("digits")              # 1. load (8x8, 80/20 split, seed 42)
    >>> fitted = train("logreg", dataset)              # 2-3. preprocess and fit
    >>> metrics = evaluate_model(fitted.model, dataset)  # 4. evaluate
    >>> round(metrics.accuracy, 4)
    0.9667

Figures (5. visualize) live in :mod:`digitlab.plots`; :mod:`digitlab.report` writes a run folder.

Importing digitlab sets ``OMP_WAIT_POLICY=PASSIVE`` where the environment does not set it, so that
PyTorch's (and scikit-learn's) OpenMP threads, loaded after it, sleep while they wait for each other
instead of spinning. With OpenMP's default, a CNN training step on 2 cores beside one other busy program
took 49 ms instead of 26 (and up to 0.5 s under heavier load): the thread being waited for shares its
core with that program while the spinning one holds the other. On an idle machine sleeping costs 20-30%
(``benchmarks/bench_busy_cpu.py``). Import digitlab before torch, or set the variable yourself.
"""

import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # read once, when PyTorch's OpenMP runtime loads

__version__ = "0.1.0"
