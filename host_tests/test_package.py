# mip and freezing: package.json is current and complete, `mpremote mip install` of it puts a
# working node onto a (pretend) board, and manifest.py freezes the firmware package.
import json
import os
import sys

import pytest

from host_tests.test_deploy import mpremote, node_config, pretend_board, serving  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import package  # noqa: E402


def test_package_json_is_current():
    with open(os.path.join(ROOT, "package.json")) as f:
        assert f.read() == package.text(), "package.json is stale: run `make package`"


def test_package_json_lists_every_firmware_file_and_no_config():
    listed = [dest for dest, src in json.loads(package.text())["urls"]]
    assert all(dest == src for dest, src in json.loads(package.text())["urls"])  # relative: forks work
    for name in os.listdir(os.path.join(ROOT, "firmware")):
        if name.endswith(".py"):
            assert "firmware/" + name in listed
    for dest in listed:
        assert os.path.isfile(os.path.join(ROOT, dest)), dest
    assert "config.json" not in listed  # a re-install never overwrites the board's config
    assert {"boot.py", "main.py", "firmware/www/index.html"} <= set(listed)


def test_manifest_freezes_the_firmware_package():
    calls = []
    env = {
        "metadata": lambda **kw: calls.append(("metadata", kw)),
        "package": lambda name, **kw: calls.append(("package", name, kw)),
        "module": lambda name, **kw: calls.append(("module", name, kw)),
    }
    with open(os.path.join(ROOT, "manifest.py")) as f:
        exec(f.read(), env)
    pkgs = [c for c in calls if c[0] == "package"]
    assert pkgs == [("package", "firmware", {"base_path": ".", "opt": 3})]
    assert os.path.isfile(os.path.join(ROOT, pkgs[0][2]["base_path"], "firmware", "__init__.py"))
    # A described package without a version: MicroPython's manifest tools would append
    # `__version__` to every frozen module, a global each in the heap (firmware.VERSION has it).
    meta = dict(calls[0][1])
    assert calls[0][0] == "metadata" and meta["description"] and "version" not in meta, calls[0]


# mip installs the .py sources, which the board compiles at import: that takes more heap than
# the .mpy files `make flash` copies (the 128K pretend board runs out; 256K on this 64-bit host
# is about what an ESP32 with PSRAM or an ESP32-S3 leaves to Python).
@pytest.mark.slow
def test_mip_install_gives_a_working_node(pretend_board, tmp_path):  # noqa: F811
    board = pretend_board(heapsize="256K")
    p = mpremote(board.port, "mip", "install", "--target", ".", os.path.join(ROOT, "package.json"), timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    for dest, _ in json.loads(package.text())["urls"]:
        with open(os.path.join(ROOT, dest), "rb") as f:
            assert board.read(dest) == f.read(), dest
    cfg = node_config(name="mipnode")
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    mark = board.mark()
    p = mpremote(board.port, "fs", "cp", str(tmp_path / "config.json"), ":config.json", "+", "reset")
    assert p.returncode == 0, p.stdout + p.stderr
    state = serving(board, cfg, mark)
    assert state["node"] == "mipnode"
