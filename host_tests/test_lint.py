# The type check knows the board's API: a misspelt machine/network call is an error, and the
# firmware itself has none.
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
pytestmark = pytest.mark.slow


def pyright(*args, cwd=ROOT):
    exe = os.path.join(BIN, "pyright")
    assert os.path.exists(exe), "pyright missing: run `make venv`"
    return subprocess.run([exe, "--pythonpath", sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_firmware_type_checks_clean():
    r = pyright()
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 errors" in r.stdout


def test_misspelt_board_calls_are_errors(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import machine\nimport network\n"
        "p = machine.Pin(26, machine.Pin.OUT, value=1)\n"
        "p.valu(0)\n"
        "network.WLAN(network.STA_IF).conect('ssid', 'pw')\n"
    )
    good = tmp_path / "good.py"
    good.write_text(
        "import machine\nimport network\n"
        "p = machine.Pin(26, machine.Pin.OUT, value=1)\n"
        "p.value(0)\n"
        "network.WLAN(network.STA_IF).connect('ssid', 'pw')\n"
    )
    r = pyright(str(bad), str(good), cwd=str(tmp_path))
    assert r.returncode != 0
    assert 'bad.py:4' in r.stdout and "valu" in r.stdout
    assert 'bad.py:5' in r.stdout and "conect" in r.stdout
    assert not [line for line in r.stdout.splitlines() if "good.py:" in line and "error" in line]


def test_ruff_clean():
    exe = os.path.join(BIN, "ruff")
    r = subprocess.run([exe, "check", "firmware", "boot.py", "main.py", "tools", "host_tests"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
