"""What ``digitlab data info`` shows of the built-in datasets (present or not, where, how big, checksums), and of the
files digitlab makes for itself in the data cache."""

from __future__ import annotations

__all__ = ["dataset_status", "made_files"]


def _mnist_status(verify: bool) -> dict:
    from digitlab.data import DATASETS, mnist

    cache = mnist.cache_dir()
    present = mnist.is_cached(cache)
    summary, hurt = DATASETS["mnist"].summary, None if present else mnist.damage(cache)
    if hurt:
        summary += f"; damaged: {hurt}; fetch it again: `{mnist.FETCH_COMMAND}`"
    elif not present:
        summary += f"; not fetched: run `{mnist.FETCH_COMMAND}` (it goes to {cache})"
    return {
        "name": "mnist",
        "present": present,
        "path": str(cache) if present else None,
        "size_bytes": sum((cache / name).stat().st_size for name in mnist.FILES) if present else None,
        "checksums_ok": mnist._checksums_hold(cache) if present and verify else None,
        "summary": summary,
        "damaged": str(cache) if hurt else None,
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
        ``checksums_ok`` (None when there is nothing to check), ``summary`` and ``damaged`` (MNIST's cache folder
        when a file was cut short or deleted since the fetch, else None).

    Examples
    --------
    >>> [row["name"] for row in dataset_status(verify=False)]
    ['digits', 'mnist']
    """
    from digitlab.data.digits import digits_status

    return [digits_status(), _mnist_status(verify)]


def made_files() -> list[dict]:
    """The data cache's folders of files digitlab makes for itself, each safe to delete (made again when needed).

    One dict per folder present, with keys ``what``, ``path``, ``files`` and ``size_bytes``; each folder keeps
    at most :data:`~digitlab.data.cache.CACHE_FILES` files.
    """
    from digitlab.data.cache import MADE, made_folder

    rows = []
    for name, what in MADE.items():
        folder = made_folder(name)
        if folder.is_dir():
            sizes = [_size(f) for f in folder.iterdir() if not f.name.startswith(".")]
            sizes = [size for size in sizes if size is not None]
            rows.append({"what": what, "path": str(folder), "files": len(sizes), "size_bytes": sum(sizes)})
    return rows


def _size(path) -> int | None:
    """A file's size; None for a folder, or a file another run removed meanwhile."""
    try:
        return path.stat().st_size if path.is_file() else None
    except OSError:
        return None
