from __future__ import annotations

import sys
from pathlib import Path

# the toy space and fake evaluators live beside the strategy tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "strategies"))
