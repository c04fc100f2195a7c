"""`python -m pipelines.inspect`: the inspector's command name, kept; the code lives in
`inspection/` (see inspection/cli.py and docs/inspection.md)."""
from __future__ import annotations

import sys

from inspection.cli import main

if __name__ == "__main__":
    sys.exit(main())
