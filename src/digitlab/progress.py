"""A Rich progress bar for a training loop, with the loss and validation accuracy per epoch.

The loop sees a narrow interface: use the bar as a context manager, call ``step(frac)`` as
training advances (``frac`` from 0 to 1) and ``epoch(record)`` after each epoch. A disabled
bar does nothing, and Rich is imported only when the bar is shown.

Examples
--------
>>> with TrainingBar(enabled=False, epochs=2) as bar:
...     bar.step(0.5)
...     bar.epoch({"epoch": 1, "loss": 0.25, "val_accuracy": None})
"""

from __future__ import annotations

from typing import Any

__all__ = ["TrainingBar"]


class TrainingBar:
    """A progress bar over training; ``enabled=False`` gives one that draws nothing.

    Parameters
    ----------
    enabled : bool
        Draw the bar (a model's ``verbose``).
    epochs : int or None
        The most epochs the training may run, shown as "epoch 3/40"; None (a time budget
        ends training) shows "epoch 3".
    title : str
        The word in bold before the epoch, e.g. the model's name.
    """

    total = 1000  # progress is tracked as a fraction (steps, or the clock under a time budget)

    def __init__(self, enabled: bool, epochs: int | None, title: str = "CNN"):
        self.epochs = epochs
        self._bar = None
        if enabled:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn(f"[bold]{title}[/] {{task.description}}"),
                BarColumn(),
                TextColumn("loss {task.fields[loss]}  val acc {task.fields[val]}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._task = self._bar.add_task("epoch 1", total=self.total, loss="-", val="-")

    def __enter__(self) -> "TrainingBar":
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=self.total)
            self._bar.stop()

    def step(self, frac: float) -> None:
        """Training is ``frac`` (0 to 1) of the way through."""
        if self._bar is not None:
            self._bar.update(self._task, completed=min(frac, 1.0) * self.total)

    def epoch(self, record: dict[str, Any]) -> None:
        """An epoch ended: ``record`` has ``epoch``, ``loss`` and ``val_accuracy`` (or None)."""
        if self._bar is not None:
            val = "-" if record["val_accuracy"] is None else f"{record['val_accuracy']:.4f}"
            self._bar.update(
                self._task,
                description=f"epoch {record['epoch']}" + (f"/{self.epochs}" if self.epochs else ""),
                loss=f"{record['loss']:.4f}",
                val=val,
            )
