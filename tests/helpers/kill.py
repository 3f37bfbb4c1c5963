"""kill -9 of a child process at a point it reports."""

import signal
import subprocess
import sys

from tests.conftest import ROOT


def kill_when_counted(script: str, args: list[str], count: int) -> None:
    """Run `python -c script *args` from the repository, which prints running counts one a
    line, and kill -9 it once a count reaches count."""
    proc = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    for line in proc.stdout:
        if line.strip().isdigit() and int(line) >= count:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
