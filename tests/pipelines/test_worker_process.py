"""What a local worker process does for itself: find its launcher through Beam's shell, end with
it, and exit without interpreter teardown (keeping a failure's exit status)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pipelines.workers import launcher_chain
from tests.pipelines.test_kill_safety import _alive

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENV = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc (Linux)")


def _through_shell(code: str, **kwargs) -> subprocess.CompletedProcess:
    """Runs `code` the way Beam's local runner starts a worker: `sh -c 'python ...'`."""
    script = textwrap.dedent(code)
    # a second command keeps the shell from exec-ing python, as Beam's shell may not
    command = f"{sys.executable} -c {_quote(script)}; exit $?"
    return subprocess.run(command, shell=True, env=ENV, capture_output=True, text=True,
                          timeout=120, **kwargs)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\"'\"'") + "'"


def test_launcher_chain_goes_through_the_shell():
    me = os.getpid()
    result = _through_shell(f"""
        import os
        from pipelines.workers import launcher_chain
        chain = launcher_chain({me})
        print(chain, os.getppid())
    """)
    assert result.returncode == 0, result.stderr
    chain, parent = result.stdout.split("] ")
    chain = [int(x) for x in chain.strip("[").split(",")]
    assert chain[-1] == me and chain[0] == int(parent) and len(chain) == 2  # [shell, me]


def test_launcher_chain_is_none_outside_a_launchers_workers():
    assert launcher_chain(None) is None
    assert launcher_chain(os.getpid()) is None  # the launcher itself
    result = _through_shell("""
        from pipelines.workers import launcher_chain
        print(launcher_chain(1), launcher_chain(2 ** 22 + 7))
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["None", "None"]


TEARDOWN = """
    import sys
    from pipelines.workers import exit_without_teardown

    class Noisy:
        def __del__(self):
            print("teardown ran", flush=True)

    noisy = Noisy()
    exit_without_teardown({launcher})
    sys.stdout.write("unflushed output")
    {ending}
"""


def test_worker_exits_without_teardown_and_keeps_its_output():
    result = _through_shell(TEARDOWN.format(launcher=os.getpid(), ending="pass"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "unflushed output"  # flushed; the module teardown never ran


def test_worker_that_fails_still_exits_with_an_error():
    result = _through_shell(TEARDOWN.format(launcher=os.getpid(),
                                            ending="raise RuntimeError('bundle failed')"))
    assert result.returncode == 1
    assert "RuntimeError: bundle failed" in result.stderr
    assert "teardown ran" not in result.stdout


def test_teardown_runs_as_usual_outside_a_local_worker():
    result = _through_shell(TEARDOWN.format(launcher=1, ending="pass"))
    assert result.returncode == 0, result.stderr
    assert "teardown ran" in result.stdout


def test_worker_ends_when_its_launcher_is_killed(tmp_path):
    """A stand-in launcher starts a worker through a shell, then is SIGKILLed."""
    marker = tmp_path / "worker.out"
    worker = textwrap.dedent(f"""
        import os, sys, time
        from pipelines.workers import die_with_launcher
        die_with_launcher(int(sys.argv[1]))
        with open({str(marker)!r}, "w") as handle:
            handle.write(str(os.getpid()))
        time.sleep(60)
    """)
    launcher_code = textwrap.dedent(f"""
        import os, subprocess, sys, time
        subprocess.Popen({sys.executable!r} + " -c " + {_quote(worker)!r} + " " + str(os.getpid())
                         + "; exit $?", shell=True)
        time.sleep(60)
    """)
    launcher = subprocess.Popen([sys.executable, "-c", launcher_code], env=ENV)
    try:
        deadline = time.monotonic() + 60
        while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        worker_pid = int(marker.read_text())
        assert _alive(worker_pid)
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        deadline = time.monotonic() + 10
        while _alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(worker_pid), "the worker outlived its killed launcher"
    finally:
        if launcher.poll() is None:
            launcher.kill()
        if marker.exists() and marker.read_text() and _alive(int(marker.read_text())):
            os.kill(int(marker.read_text()), signal.SIGKILL)

