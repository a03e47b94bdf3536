"""What ``digitlab data info`` shows of the built-in datasets: present or not, where, how big, checksums."""

from __future__ import annotations

__all__ = ["dataset_status"]


def _mnist_status(verify: bool) -> dict:
    from digitlab.data import DATASETS, mnist

    cache = mnist.cache_dir()
    present = mnist._read_manifest(cache) is not None
    summary = DATASETS["mnist"].summary
    if not present:
        summary += f"; not fetched: run `{mnist.FETCH_COMMAND}` (it goes to {cache})"
    return {
        "name": "mnist",
        "present": present,
        "path": str(cache) if present else None,
        "size_bytes": sum((cache / name).stat().st_size for name in mnist.FILES) if present else None,
        "checksums_ok": mnist._checksums_hold(cache) if present and verify else None,
        "summary": summary,
    }


def dataset_status(*, verify: bool = True) -> list[dict]:
    """Every dataset digitlab knows: present or not, where, how big, and whether its checksums hold.

    Parameters
    ----------
    verify : bool
        Re-hash MNIST's files (about 0.2 s); otherwise ``checksums_ok`` is None.

    Returns
    -------
    list of dict
        One per dataset with keys ``name``, ``present``, ``path``, ``size_bytes``,
        ``checksums_ok`` (None when there is nothing to check) and ``summary``.

    Examples
    --------
    >>> [row["name"] for row in dataset_status(verify=False)]
    ['digits', 'mnist']
    """
    from digitlab.data.digits import digits_status

    return [digits_status(), _mnist_status(verify)]
