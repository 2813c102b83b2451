"""upsproxy commands in child processes, as a user runs them: started, their
banner read (the listener URLs), stopped with SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent / "upsproxy"
UPSPROXY = [str(BIN)] if BIN.exists() else [sys.executable, "-m", "upsproxy"]


class Child:
    """``upsproxy ARGS`` in a child process; waits for its banner (up to "Ctrl-C")."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([*UPSPROXY, *args], stderr=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, text=True)
        self.banner = ""
        deadline = time.monotonic() + 30
        while "Ctrl-C" not in self.banner:
            line = self.proc.stderr.readline()
            if not line or time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"upsproxy {args[0]} did not start: {self.banner}")
            self.banner += line
        self.proxy_url = re.search(r"proxy\s+(http://\S+)", self.banner).group(1)
        self.base_url = re.search(r"base URL\s+(http://\S+)", self.banner).group(1)

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and what it printed after the banner."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            rest = self.proc.communicate(timeout=15)[1]
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, rest
