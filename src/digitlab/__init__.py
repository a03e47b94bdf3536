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
"""

__version__ = "0.1.0"
