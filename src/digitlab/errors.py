"""The exceptions for problems a person can fix, and one line for an operating-system error or a missing extra."""

import errno
import importlib.util
from typing import Any


class DigitlabError(Exception):
    """Something the user can fix: a bad path, an unknown name, a corrupt file.

    The CLI prints the message as one line and exits with code 2; the web API answers 4xx.
    The message says what is wrong and what to do.

    Examples
    --------
    >>> raise DigitlabError("unknown model 'lgoreg'; choose one of: logreg, svm")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: unknown model 'lgoreg'; choose one of: logreg, svm
    """


class InvalidValueError(DigitlabError, ValueError):
    """A value that cannot be used: a parameter out of range, data of the wrong shape.

    Both a :class:`DigitlabError` (the CLI prints one line) and the ``ValueError`` that
    scikit-learn's estimator contract names for bad parameters and bad data.

    Examples
    --------
    >>> isinstance(InvalidValueError("epochs must be a positive integer, got 0"), ValueError)
    True
    """


_OS_ADVICE = {
    errno.ENOSPC: "the disk is full; free some space or choose another folder",
    errno.EDQUOT: "the disk quota is used up; free some space or choose another folder",
    errno.EROFS: "the file system is read-only; choose another folder",
    errno.EACCES: "permission denied; check the permissions or choose another path",
    errno.EPERM: "operation not permitted; check the permissions or choose another path",
    errno.ENOENT: "no such file or folder",
    errno.EISDIR: "is a folder, not a file",
    errno.EMFILE: "too many open files; close some programs and try again",
}
_ANOTHER_FOLDER = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def describe_os_error(exc: OSError, folder: str | None = None) -> str:
    """One line for an operating-system error a person can fix: where, what, and what to do.

    ``folder`` is how the command names the folder it writes to (``--out``, ``FOLDER``, ``$DIGITLAB_DATA``):
    said where the advice is to choose another folder.

    Examples
    --------
    >>> describe_os_error(OSError(errno.ENOSPC, "No space left on device", "runs/x/report.html"), "--out")
    'runs/x/report.html: the disk is full; free some space or choose another folder (--out)'
    """
    what = _OS_ADVICE.get(exc.errno) or (exc.strerror or str(exc) or type(exc).__name__).rstrip(".").lower()
    if folder and exc.errno in _ANOTHER_FOLDER:
        what = f"{what} ({folder})"
    where = exc.filename if exc.filename is not None else None
    return f"{where}: {what}" if where else what


def require_extra(extra: str, modules: tuple[str, ...], what: str) -> None:
    """Refuse in one line when ``what`` needs a module of digitlab's optional ``extra`` that is not installed.

    Examples
    --------
    >>> require_extra("serve", ("json",), "the drawing page")  # installed: nothing to say
    >>> try:
    ...     require_extra("serve", ("no_such_module_here",), "the drawing page")
    ... except DigitlabError as error:
    ...     print(str(error).replace("; ", ";\\n"))
    the drawing page needs no_such_module_here, which is not installed;
    run `pip install 'digitlab[serve]'` (in a clone of digitlab: `make install`)
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise DigitlabError(f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} "
                            f"not installed; run `pip install 'digitlab[{extra}]'` (in a clone of digitlab: "
                            "`make install`)")


def require_dataset(dataset: Any, what: str) -> None:
    """Refuse in one line a ``dataset`` that is not a :class:`~digitlab.data.Dataset` (a learner's name, ``"digits"``).

    >>> require_dataset("digits", "evaluate_model")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: evaluate_model takes a Dataset, e.g. load_dataset('digits'); got the str 'digits'
    """
    if not hasattr(dataset, "train_images"):  # a Dataset by its fields: one made before a module reload is one too
        raise DigitlabError(f"{what} takes a Dataset, e.g. load_dataset({dataset!r:.40}); got the "
                            f"{type(dataset).__name__} {dataset!r:.40}")


def require_name(dataset: Any, what: str) -> None:
    """Refuse in one line a Dataset of one's own where a dataset's name is wanted (a TypeError: unhashable)."""
    if not isinstance(dataset, str):
        raise DigitlabError(f"{what} takes a dataset's name, e.g. 'digits'; for a Dataset of your own use train, "
                            f"evaluate_model and save_model (got the {type(dataset).__name__} {dataset!r:.40})")


def estimator_of(model: Any, what: str) -> Any:
    """The fitted estimator ``model`` is or holds: a :class:`~digitlab.train.FittedModel` (``train``'s answer) or a
    :class:`~digitlab.store.LoadedModel` (``load_model``'s) gives its ``.model``, the first thing a learner passes on.

    ``what`` names the call in the one line for anything else that is no estimator (a name, a path, None).

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> estimator = SimpleNamespace(predict=len)
    >>> estimator_of(SimpleNamespace(model=estimator, card=None), "evaluate_model") is estimator
    True
    >>> estimator_of("runs/latest", "evaluate_model")
    Traceback (most recent call last):
    ...
    digitlab.errors.DigitlabError: evaluate_model takes a fitted model (train(...).model, or load_model(run).model), \
got the str 'runs/latest'
    """
    if not hasattr(model, "predict") and hasattr(getattr(model, "model", None), "predict"):
        return model.model
    if not hasattr(model, "predict"):
        raise DigitlabError(f"{what} takes a fitted model (train(...).model, or load_model(run).model), "
                            f"got the {type(model).__name__} {model!r:.60}")
    return model
