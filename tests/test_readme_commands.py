"""A newcomer's commands from the README leave the repository unchanged but for the ignored runs/.

The README's Usage block (and the two no-argument commands of its set-up) are run, as written, in
a fresh clone of this checkout beside a link to ../shared, and `git status` of the clone must be
clean afterwards: every output lands under the ignored `runs/` folder, none in a package folder or
the repository root.
"""
from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")


def usage_commands(readme: str) -> list[list[str]]:
    """The `python -m ...` commands of the README's Usage block, continuation lines joined."""
    block = readme[readme.index("## Usage"):]
    block = block[:block.index("\n#", 10)]
    commands, current = [], ""
    for line in block.splitlines():
        if not line.startswith("    ") or line.strip().startswith("#"):
            continue
        current += " " + line.strip().rstrip("\\").strip()
        if not line.rstrip().endswith("\\"):
            commands.append(shlex.split(current))
            current = ""
    return [c for c in commands if c[:2] == ["python", "-m"]]


def test_usage_block_is_read():
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as handle:
        commands = usage_commands(handle.read())
    modules = [c[2] for c in commands]
    assert modules[0] == "pipelines.build_curriculum" and "trainers.train" in modules
    assert "pipelines.export" in modules and all(c.count("--out") <= 1 for c in commands)


@pytest.mark.slow
def test_the_readme_commands_leave_the_tree_unchanged(tmp_path):
    if not os.path.isdir(os.path.join(SHARED, "data", "ltr-yahoo-sample")):
        pytest.skip(f"../shared is absent ({SHARED})")
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", REPO, str(clone)], check=True)
    os.symlink(SHARED, tmp_path / "shared")
    with open(clone / "README.md", encoding="utf-8") as handle:
        commands = [["python", "-m", "pipelines.build_curriculum"],
                    ["python", "-m", "trainers.train"]]
        commands += usage_commands(handle.read())
    env = dict(os.environ, PYTHONPATH=str(clone))
    for argv in commands:
        done = subprocess.run([sys.executable, *argv[1:]], cwd=clone, env=env,
                              capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                            cwd=clone, capture_output=True, text=True, check=True).stdout
    assert status == "", f"the README's commands changed the tree:\n{status}"
    assert (clone / "runs" / "report.html").is_file()
