"""A plain (not editable) `pip install .` works outside the checkout: the console
script, the bundled cassette, the addons for stock `mitmdump -s`, the default confdir.

The checkout is copied first (pip builds in the source tree: it must not leave a
build/ directory in the shared checkout) and installed with --no-deps into a fresh
venv; that venv sees the dev environment's site-packages as a plain path entry for
mitmproxy, click and PyYAML, so the dev environment's editable upsproxy (a .pth
finder, not processed for a plain path entry) stays out of it.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest
import requests

CHECKOUT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "upsproxy", "addons", "cassettes")


class Installed:
    def __init__(self, venv: Path) -> None:
        self.venv = venv
        self.python = venv / "bin" / "python"
        self.upsproxy = venv / "bin" / "upsproxy"
        self.site = Path(subprocess.run(
            [str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True, timeout=30).stdout.strip())
        self.package = self.site / "upsproxy"


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("install")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    for name in SOURCES:
        path = CHECKOUT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=ignore)
        else:
            shutil.copy2(path, src / name)
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    env = Installed(venv)
    # Dependencies from the dev environment, as a plain path (its .pth files,
    # among them the editable upsproxy's, are not processed for it).
    (env.site / "dev-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(env.python), "install", "--no-deps",
         "--disable-pip-version-check", "-q", str(src)],
        capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stdout + out.stderr
    return env


def clean_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UPSPROXY_", "PYTHON")) and k not in ("VIRTUAL_ENV",)}
    env["HOME"] = str(home)
    env["PATH"] = "/usr/bin:/bin"  # neither the dev venv nor the checkout on PATH
    env["PYTHONUNBUFFERED"] = "1"  # log lines reach the pipe as they are written
    return env


class Output:
    """Everything a child prints on one stream, read by a thread: waiting for a
    line never blocks past its timeout, and the rest is there after exit."""

    def __init__(self, stream) -> None:  # type: ignore[no-untyped-def]
        self.lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        self.stream = stream
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream) -> None:  # type: ignore[no-untyped-def]
        for line in stream:
            self.lines.put(line)
        self.lines.put("")

    def until(self, marker: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while marker not in self.text:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no {marker!r} within {timeout} s: {self.text}") from None
            if not line:
                raise AssertionError(f"exited before {marker!r}: {self.text}")
            self.text += line
        return self.text

    def rest(self) -> str:
        self.thread.join(15)
        self.stream.close()
        while not self.lines.empty():
            self.text += self.lines.get()
        return self.text


def stop(proc: subprocess.Popen[str], output: Output) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return output.rest()


def test_the_installed_package_is_imported_from_the_install_not_the_checkout(installed,
                                                                           tmp_path):
    out = subprocess.run(
        [str(installed.python), "-c",
         "import upsproxy, upsproxy.addons.replay as r, upsproxy.sandbox as s; "
         "print(upsproxy.__file__); print(r.__file__); print(s.default_cassette_path())"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=clean_env(tmp_path))
    assert out.returncode == 0, out.stderr
    for line in out.stdout.splitlines():
        path = Path(line).resolve()
        assert path.is_relative_to(installed.package), line
        assert not path.is_relative_to(CHECKOUT), line
    assert out.stdout.splitlines()[2].endswith("upsproxy/cassettes/ups-cie.yaml")


def test_installed_replay_uses_the_bundled_cassette_and_answers(installed, tmp_path):
    proc = subprocess.Popen(
        [str(installed.upsproxy), "replay", "--listen", "127.0.0.1:0",
         "--reverse-listen", "127.0.0.1:0", "--confdir", str(tmp_path / "conf")],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, cwd=tmp_path,
        env=clean_env(tmp_path))
    output = Output(proc.stderr)
    try:
        banner = output.until("Ctrl-C")
        cassette = Path(re.search(r"interactions from (\S+?)\)", banner).group(1)).resolve()
        assert cassette.name == "ups-cie.yaml" and cassette.exists()
        assert cassette.is_relative_to(installed.package), banner
        assert not cassette.is_relative_to(CHECKOUT), banner
        base = re.search(r"base URL\s+(http://\S+)", banner).group(1)
        session = requests.Session()
        session.trust_env = False
        resp = session.post(f"{base}/security/v1/oauth/token", timeout=10)
        assert resp.status_code == 400
        assert resp.json()["response"]["errors"][0]["code"] == "10400"
        code = session.post(f"{base}/_upsproxy/codes", timeout=10, json={
            "client_id": "TESTCLIENT", "redirect_uri": "https://app.example.test/cb"})
        assert code.status_code == 200, code.text
        token = session.post(f"{base}/security/v1/oauth/token", timeout=10,
                             auth=("TESTCLIENT", "S3CRET"),
                             data={"grant_type": "authorization_code",
                                   "code": code.json()["code"],
                                   "redirect_uri": "https://app.example.test/cb"})
        assert token.status_code == 200, token.text
        assert token.json()["expires_in"] == "14399"  # the bundled cassette's lifetime
    finally:
        log = stop(proc, output)
    assert proc.returncode == 0 and "upsproxy stopped." in log, log
    assert "Traceback" not in log


def test_stock_mitmdump_loads_the_installed_addon(installed, tmp_path):
    addon = installed.package / "addons" / "replay.py"
    assert addon.exists()
    proc = subprocess.Popen(
        [str(installed.python), "-c",
         "import sys; from mitmproxy.tools.main import mitmdump; "
         "sys.argv[0] = 'mitmdump'; sys.exit(mitmdump())",
         "-s", str(addon), "--listen-host", "127.0.0.1", "-p", "0",
         "--set", f"confdir={tmp_path / 'conf'}", "--set", "connection_strategy=lazy",
         "--set", r"allow_hosts=^(wwwcie|onlinetools|www)\.ups\.com"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
        env=clean_env(tmp_path))
    output = Output(proc.stdout)
    try:
        log = output.until("listening at")
        assert "Loading script" in log and "Error" not in log, log
        port = re.search(r"listening at 127\.0\.0\.1:(\d+)", log).group(1)
        resp = requests.post("https://wwwcie.ups.com/security/v1/oauth/token", timeout=10,
                             proxies={"https": f"http://127.0.0.1:{port}"},
                             verify=str(tmp_path / "conf" / "mitmproxy-ca-cert.pem"),
                             data={"grant_type": "authorization_code"})
        assert resp.status_code == 401  # the sandbox's envelope: no Basic, no PKCE
        assert resp.json()["response"]["errors"][0]["message"] == \
            "Invalid/Missing Authorization Header"
    finally:
        log = stop(proc, output)
    # Stock mitmdump may print an asyncio CancelledError for a connection still open
    # at SIGTERM (mitmproxy's own shutdown noise); nothing may fail inside upsproxy.
    assert not re.search(r'File "[^"]*upsproxy[^"]*"', log), log


def test_the_default_confdir_is_under_home_not_mitmproxys(installed, tmp_path):
    out = subprocess.run([str(installed.upsproxy), "ca"], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path, env=clean_env(tmp_path))
    assert out.returncode == 0, out.stderr
    ca = Path(out.stdout.strip())
    assert ca == tmp_path / ".upsproxy" / "mitmproxy-ca-cert.pem"
    assert "BEGIN CERTIFICATE" in ca.read_text()
    assert (tmp_path / ".upsproxy" / "mitmproxy-ca.pem").exists()
    assert not (tmp_path / ".mitmproxy").exists()
