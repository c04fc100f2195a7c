"""What every benchmark's `--out DIR` holds: `results.md` (the markdown the README quotes in a
generated block) and `results.json` (the raw numbers), and the shared pieces of both: the
machine's description (cores, load average, date) and a median with its spread."""
from __future__ import annotations

import datetime
import json
import os
import platform

import numpy as np


def load() -> float:
    """The 1-minute load average (nan where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def machine_meta(**extra) -> dict:
    """Cores, load average now (`load_before`), date and machine, plus `extra`; the caller sets
    `load_after` when done."""
    return {"cores": os.cpu_count(), "load_before": load(),
            "date": datetime.date.today().isoformat(),
            "machine": f"{platform.machine()} {platform.system()} Python "
                       f"{platform.python_version()}", **extra}


def machine_line(meta: dict) -> str:
    """`2 cores, load 1.2 before / 1.5 after, DATE, MACHINE` for results.md."""
    return (f"{meta['cores']} cores, load {meta['load_before']:.1f} before / "
            f"{meta['load_after']:.1f} after, {meta['date']}, {meta['machine']}")


def spread(values: list[float], fmt: str) -> str:
    """The median, and `(min-max)` when there are several values."""
    med = float(np.median(values))
    if len(values) == 1:
        return f"{med:{fmt}}"
    return f"{med:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def write_results(out: str | None, text: str, raw: dict, echo: bool = True) -> None:
    """Prints results.md's text (unless not `echo`); with `out`, writes it and results.json
    (raw) there."""
    if echo:
        print(text, end="")
    if not out:
        return
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.md"), "w") as handle:
        handle.write(text)
    with open(os.path.join(out, "results.json"), "w") as handle:
        json.dump(raw, handle, indent=1)
