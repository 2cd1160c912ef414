#!/usr/bin/env python3
# Pre-gzip the control page for flash: firmware/www/index.html -> index.html.gz.
# Reproducible (no timestamp or name in the gzip header), so unchanged pages deploy as unchanged.
import gzip
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "firmware", "www", "index.html")


def build(src=PAGE, dst=None):
    dst = dst or src + ".gz"
    with open(src, "rb") as f:
        raw = f.read()
    data = gzip.compress(raw, compresslevel=9, mtime=0)
    with open(dst + ".tmp", "wb") as f:
        f.write(data)
    os.replace(dst + ".tmp", dst)
    return len(raw), len(data)


if __name__ == "__main__":
    raw, gz = build(*sys.argv[1:])
    print("page: %d bytes, %d gzipped" % (raw, gz))
