"""Make the repo-root ``deployments`` package importable without an (re)install.

An editable install made before ``deployments/`` existed does not map it, and plain
``pytest`` (unlike ``python -m pytest``) does not put the repo root on sys.path.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)
