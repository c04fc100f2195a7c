"""What the command lines share: usage errors as one line."""
from __future__ import annotations

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one `error: ...` line and exit status 2 (no usage dump; --help has it)."""

    def error(self, message: str):
        print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
        raise SystemExit(2)


__all__ = ["OneLineParser"]
