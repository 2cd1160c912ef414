#!/usr/bin/env python3
# Write package.json for mip: `mpremote mip install --target / github:OWNER/REPO` then installs
# the firmware package, boot.py, main.py and the control page onto a board, with URLs relative
# to package.json so a fork installs from itself. config.json is left out on purpose: a
# re-install must never overwrite the board's own configuration.
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def files():
    out = ["boot.py", "main.py"]
    for name in sorted(os.listdir(os.path.join(ROOT, "firmware"))):
        if name.endswith(".py"):
            out.append("firmware/" + name)
    out.append("firmware/www/index.html")
    return out


def package():
    from firmware import VERSION

    return {"urls": [[f, f] for f in files()], "deps": [], "version": VERSION}


def text():
    return json.dumps(package(), indent=2) + "\n"


if __name__ == "__main__":
    path = os.path.join(ROOT, "package.json")
    with open(path, "w") as f:
        f.write(text())
    print("package.json: %d files, version %s" % (len(files()), package()["version"]))
