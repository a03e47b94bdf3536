"""Decode a pickle of NumPy arrays without letting it run any other code.

Only used for the classic ``mnist.pkl.gz`` (a checksum-verified file from PyPI, never a file
a person hands in). The unpickler admits only the names NumPy uses to rebuild arrays; any
other callable named in the pickle is refused *before* it could be called.

Examples
--------
>>> import pickle, numpy as np
>>> data = pickle.dumps((np.arange(3, dtype=np.float32), 7), protocol=4)
>>> load_numpy_pickle(data)
(array([0., 1., 2.], dtype=float32), 7)
>>> load_numpy_pickle(b"cos\\nsystem\\n(S'echo hi'\\ntR.", source="evil.pkl")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
digitlab.errors.DigitlabError: evil.pkl: the pickle names os.system, which is not a NumPy array-... refusing to load it
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Callable

import numpy as np

from digitlab.errors import DigitlabError

__all__ = ["ALLOWED_NAMES", "NumpyOnlyUnpickler", "load_numpy_pickle"]


def _multiarray_reconstruct() -> Callable[..., Any]:
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # NumPy < 2
        from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
    return _reconstruct


def _numeric_frombuffer() -> Callable[..., Any]:
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # NumPy < 2
        from numpy.core.numeric import _frombuffer  # type: ignore[no-redef]
    return _frombuffer


#: (module, name) pairs a pickle may name, and how to get each object.
ALLOWED_NAMES: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _multiarray_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _multiarray_reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _numeric_frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _numeric_frombuffer,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
}


class NumpyOnlyUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` whose ``find_class`` admits only :data:`ALLOWED_NAMES`.

    Parameters
    ----------
    file : binary file
        The pickle stream.
    source : str
        Name used in error messages.
    **kwargs
        Passed to :class:`pickle.Unpickler` (e.g. ``encoding="latin1"`` for Python 2 pickles).
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str = "pickle", **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` only if it is one of NumPy's array-reconstruction names."""
        get = ALLOWED_NAMES.get((module, name))
        if get is None:
            raise DigitlabError(
                f"{self.source}: the pickle names {module}.{name}, which is not a NumPy "
                "array-reconstruction name; refusing to load it"
            )
        return get()

    def persistent_load(self, pid: Any) -> Any:
        """Refuse persistent ids: NumPy's pickles never use them."""
        raise DigitlabError(f"{self.source}: the pickle uses persistent ids; refusing to load it")


def load_numpy_pickle(data: bytes, *, source: str = "pickle", encoding: str = "latin1") -> Any:
    """Unpickle ``data`` admitting only NumPy's array-reconstruction names.

    Parameters
    ----------
    data : bytes
        The pickle.
    source : str
        Where it came from, for error messages.
    encoding : str
        How to decode Python 2 byte strings; ``"latin1"`` keeps array buffers intact.

    Raises
    ------
    DigitlabError
        When the pickle names anything else, or is not a valid pickle.
    """
    try:
        return NumpyOnlyUnpickler(io.BytesIO(data), source=source, encoding=encoding).load()
    except DigitlabError:
        raise
    except Exception as exc:  # a damaged pickle can raise almost anything
        reason = " ".join(str(exc).split())[:160]
        raise DigitlabError(f"{source}: not a valid pickle of NumPy arrays ({type(exc).__name__}: {reason})") from None
