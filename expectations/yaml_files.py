"""Reading the declarations' YAML: one parser for every file under ``expectations/``.

PyYAML's pure-Python parser costs ~0.25 s per declaration file here, and every command, every
served flow run's start and every test that opens a warehouse reads the declarations; libyaml's C
parser (``CSafeLoader``, shipped in PyYAML's wheels) reads the same files ~10× faster with the same
safe constructors. Where PyYAML was built without libyaml, the pure-Python ``SafeLoader`` is used:
the result is the same, only slower.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

#: libyaml's parser with the safe constructors, or the pure-Python one when libyaml is absent
SAFE_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_yaml(path: Path) -> Any:
    """The YAML document of ``path`` (UTF-8), parsed with ``SAFE_LOADER``: plain data only."""
    with path.open(encoding="utf-8") as fh:
        return yaml.load(fh, Loader=SAFE_LOADER)
