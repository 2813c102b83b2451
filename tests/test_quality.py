"""House rules that a reviewer would otherwise have to remember."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ["cassette", "cassette_cache", "cassette_check", "cassette_io", "cli_common", "cli_ctl",
        "clock", "config", "control", "control_endpoints", "demo", "envelopes", "errors",
        "fault_answers", "fault_rules", "fault_sources", "faults", "forms", "har", "jwtkeys",
        "leak", "login_page", "match", "messages", "oauth", "pkce", "profile", "protected",
        "recorder", "redact", "redact_rules", "rewrite", "routes", "sandbox", "shape_infer",
        "shapes", "store", "store_sqlite", "trust", "upstream", "yamlfile"]


def test_the_core_never_imports_mitmproxy():
    code = ("import sys\n" + "".join(f"import upsproxy.{m}\n" for m in CORE)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] == 'mitmproxy'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT / "tests")
    assert out.stdout.strip() == "[]"


def _tool(name):
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else shutil.which(name)


@pytest.mark.skipif(_tool("ruff") is None, reason="ruff is not installed")
def test_ruff_is_clean():
    out = subprocess.run([_tool("ruff"), "check", "--no-cache", str(ROOT)], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout


@pytest.mark.skipif(_tool("mypy") is None or not (ROOT / "upsproxy").is_dir(),
                    reason="mypy is not installed")
def test_mypy_is_clean_on_the_core():
    out = subprocess.run([_tool("mypy"), "--no-incremental"], capture_output=True,
                         text=True, cwd=ROOT)
    assert out.returncode == 0, out.stdout
