"""Where downloaded and generated data is kept: ``$DIGITLAB_DATA``, else the user cache folder.

Examples
--------
>>> import os
>>> os.environ["DIGITLAB_DATA"] = "/tmp/dl-data"
>>> data_root()
PosixPath('/tmp/dl-data')
>>> del os.environ["DIGITLAB_DATA"]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["data_root"]


def data_root() -> Path:
    """The data cache folder: ``$DIGITLAB_DATA`` when set, else ``<user cache>/digitlab``."""
    root = os.environ.get("DIGITLAB_DATA")
    if not root:
        import platformdirs

        root = platformdirs.user_cache_dir("digitlab")
    return Path(root).expanduser()
