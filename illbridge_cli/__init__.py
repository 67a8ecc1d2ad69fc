"""``illbridge``: the operator's and library staff's command for the ReShare <-> WMS bridge.

It lives outside the Lambda layer (typer and rich are development dependencies, never shipped to Lambda) and
uses the layer's domain code (``illbridge.staff``). Installed editable by ``make setup``
(``pip install -e .``), it finds the layer in the repository it is installed from.
"""

from __future__ import annotations

import sys
from pathlib import Path

_LAYER = Path(__file__).resolve().parents[1] / "layers" / "domain"
if _LAYER.is_dir() and str(_LAYER) not in sys.path:
    sys.path.append(str(_LAYER))  # after anything already on the path (tests put the layer first themselves)
