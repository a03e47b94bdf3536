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

On the CPU, PyTorch's threads are fitted to the cores that other programs leave free while a CNN
trains or predicts (:mod:`digitlab.cores`).

ONNX Runtime's telemetry is turned off (``ORT_DISABLE_TELEMETRY=1``, unless set otherwise): since 1.25 it writes a
device id and an event database under ``~/.cache/Microsoft`` and uploads them, and prints a warning where that
folder cannot be written. A classroom tool sends nothing.
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # read once, when ONNX Runtime starts: before any import of it

__version__ = "0.1.0"
