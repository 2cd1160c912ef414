# tools/fleet.py (`make fleet`) with a small fleet: three nodes on the 32-bit frozen build on a
# real mosquitto. The figures must be there and be real: every relay's discovery config seen,
# one round trip per command, every node back online after the broker's restart, a heap figure
# from each node, and nothing it started left running.
import json
import os
import socket
import subprocess
import sys

from tools.harness import ROOT

FLEET = os.path.join(ROOT, "tools", "fleet.py")


def test_fleet_of_three_gives_every_figure(tmp_path):
    out = str(tmp_path / "fleet.json")
    p = subprocess.run([sys.executable, FLEET, "--nodes", "3", "--rounds", "3", "--timeout", "60", "--json", out],
                       cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert p.returncode == 0, p.stdout + p.stderr
    with open(out) as f:
        r = json.load(f)
    assert (r["nodes"], r["discovered_nodes"], r["discovery_configs"]) == (3, 3, 6)
    assert r["discovery_sample"]["state_topic"] == "relaynode/node01/light/state"
    assert r["discovery_sample"]["command_topic"] == "relaynode/node01/light/set"
    assert 0 < r["discovery_s"] < 60
    assert -1000 < r["discovery_after_ready_ms"]["p50"] <= r["discovery_after_ready_ms"]["max"] < 60000
    rt = r["round_trip"]
    assert rt["samples"] == 9 and 0 < rt["p50_ms"] <= rt["p99_ms"] <= rt["max_ms"] < 30000
    rs = r["restart"]
    assert rs["online"] == 3 and 0 < rs["all_online_s"] <= rs["all_discovery_s"] < 60
    mem = r["memory"]
    assert len(mem["heap_bytes"]) == 3 and all(4096 < h < 48 * 1024 for h in mem["heap_bytes"])
    assert all(x and x > 100 for x in mem["rss_kib"])
    assert "nodes discovered (discovery configs seen)" in p.stdout
    # the broker is gone with the tool
    s = socket.socket()
    try:
        assert s.connect_ex(("127.0.0.1", r["broker_port"])) != 0
    finally:
        s.close()
