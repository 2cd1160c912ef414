#!/usr/bin/env python3
# A MicroPython unix port of our own, with relaynode frozen in (`make micropython BITS=32`):
#   python tools/mpbuild.py [--bits 32|64] [--mpy-dir DIR_OR_TARBALL] [--force] [--quiet]
# Builds mpy-cross and the unix port from MPY_DIR: a MicroPython checkout (a directory), or a
# source tarball that is unpacked into build/ first. The default is the snapshot in
# ../shared/micropython/ beside the repo. Frozen in: MicroPython's asyncio and the repo's
# manifest.py (the firmware package; its page, firmware/www/, is not Python and stays on the
# filesystem). The result is build/micropython-BITS/micropython, the ESP32's pointer and object
# sizes with --bits 32 (gcc -m32: Debian's gcc-multilib).
#
# Cached: a stamp beside the interpreter holds the hash of everything that goes into it (the
# MicroPython source's identity, the build flags, the manifests, the firmware's .py files); a
# call whose hash matches the stamp does nothing. Otherwise make runs again in the same build
# folder, which recompiles only what changed.
import argparse
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
BUILD = os.path.join(ROOT, "build")
SNAPSHOT = os.path.join(os.path.dirname(ROOT), "shared", "micropython", "micropython-src.tar.xz")
# The unix port without what cannot be built here (no libffi, no berkeley-db, no mbedtls);
# axTLS gives hashlib.sha1, which the WebSocket handshake needs.
FLAGS = [
    "MICROPY_PY_BTREE=0",
    "MICROPY_PY_FFI=0",
    "MICROPY_PY_SSL=1",
    "MICROPY_SSL_AXTLS=1",
    "MICROPY_SSL_MBEDTLS=0",
]


class BuildError(Exception):
    pass


# Where the MicroPython source comes from: $MPY_DIR, else the snapshot.
def source_default():
    return os.environ.get("MPY_DIR") or SNAPSHOT


# The build folder of one word size (variant: another build beside it, see build()).
def out_dir(bits, variant=None):
    return os.path.join(BUILD, "micropython-%d" % bits + ("-" + variant if variant else ""))


# The interpreter `make micropython BITS=bits` builds (it may not exist yet).
def interpreter_path(bits=32, variant=None):
    return os.path.join(out_dir(bits, variant), "micropython")


# The built interpreter for bits, built first when missing or out of date; its path. Raises
# BuildError with what is missing (no MicroPython source, no compiler, no gcc-multilib).
def interpreter(bits=32, source=None, quiet=True):
    return build(bits, source, quiet=quiet)


def _sha256_file(path, h):
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)


# A MicroPython tree: the directory MPY_DIR names, or the tarball unpacked into build/
# (again only when the tarball changed); (its path, where it came from, its git commit or "").
def source_tree(source):
    if not os.path.exists(source):
        raise BuildError(
            "no MicroPython source at %s: put the snapshot there (../shared/micropython/micropython-src.tar.xz "
            "beside the repo) or set MPY_DIR to a MicroPython checkout" % source
        )
    if os.path.isdir(source):
        tree = os.path.abspath(source)
        if not os.path.exists(os.path.join(tree, "ports", "unix", "Makefile")):
            raise BuildError("MPY_DIR=%s is not a MicroPython checkout (no ports/unix/Makefile)" % source)
        return tree, "dir:" + tree, _git_head(tree)
    h = hashlib.sha256()
    _sha256_file(source, h)
    ident = "tar:" + h.hexdigest()
    dest = os.path.join(BUILD, "micropython-src")
    stamp = os.path.join(dest, ".unpacked")
    if _read(stamp) != ident:
        shutil.rmtree(dest, ignore_errors=True)
        os.makedirs(dest)
        try:
            with tarfile.open(source) as t:
                t.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else t.extractall(dest)
        except (tarfile.TarError, OSError) as e:
            raise BuildError("cannot unpack %s: %s" % (source, e))
        with open(stamp, "w") as f:
            f.write(ident)
    tops = [d for d in os.listdir(dest) if os.path.isdir(os.path.join(dest, d))]
    if len(tops) != 1 or not os.path.exists(os.path.join(dest, tops[0], "ports", "unix", "Makefile")):
        raise BuildError("%s does not hold a MicroPython source tree" % source)
    return os.path.join(dest, tops[0]), ident, ""


def _git_head(tree):
    try:
        p = subprocess.run(["git", "-C", tree, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        return p.stdout.strip() if p.returncode == 0 else ""
    except (OSError, subprocess.TimeoutExpired):
        return ""


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


# One line saying what to install when there is no C compiler, no make, or no 32-bit libc.
def check_toolchain(bits):
    cc = os.environ.get("CC", "gcc")
    for tool, pkg in ((cc, "gcc"), ("make", "make")):
        if not shutil.which(tool):
            raise BuildError("%s is not installed: apt-get install %s (Debian) to build MicroPython" % (tool, pkg))
    if bits == 32:
        probe = "#include <stdio.h>\nint main(void) { puts(\"\"); return 0; }\n"
        p = subprocess.run(
            [cc, "-m32", "-x", "c", "-", "-o", os.devnull], input=probe, capture_output=True, text=True
        )
        if p.returncode != 0:
            raise BuildError("%s cannot build 32-bit programs: apt-get install gcc-multilib (Debian)" % cc)


# The build manifest: MicroPython's asyncio, the repo's manifest.py (the firmware package), and
# the simulator's start-up (tools/mp/host_node.py, for tools/sim.py --frozen): it plays the part of
# the board's start-up code, which is frozen with the firmware on a board, so its code must not
# take heap here either.
def write_manifest(out):
    path = os.path.join(out, "manifest.py")
    text = (
        "# Written by tools/mpbuild.py: what the unix port of `make micropython` has frozen in.\n"
        'include("$(MPY_DIR)/extmod/asyncio")\n'
        "include(%r)\n"
        "module(%r, base_path=%r)\n" % (os.path.join(ROOT, "manifest.py"), "host_node.py", os.path.join(TOOLS, "mp"))
    )
    if _read(path) != text:
        with open(path, "w") as f:
            f.write(text)
    return path, text


# The manifest of a variant build (see build()): asyncio, then lines.
def write_variant_manifest(out, lines):
    path = os.path.join(out, "manifest.py")
    text = "# Written by tools/mpbuild.py for a variant build.\n" 'include("$(MPY_DIR)/extmod/asyncio")\n'
    text += "".join(line + "\n" for line in lines)
    if _read(path) != text:
        with open(path, "w") as f:
            f.write(text)
    return path, text


# Everything the interpreter is made of, as one hash. files: what its manifest freezes (default:
# the firmware's, for the manifest of write_manifest()).
def fingerprint(ident, bits, manifest_text, files=None):
    h = hashlib.sha256()
    h.update(("%s\n%d\n%s\n%s\n" % (ident, bits, " ".join(FLAGS), manifest_text)).encode())
    if files is None:
        sources = glob.glob(os.path.join(ROOT, "firmware", "**", "*.py"), recursive=True)
        files = [os.path.join(ROOT, "manifest.py"), os.path.join(TOOLS, "mp", "host_node.py")] + sorted(sources)
    for path in files:
        h.update(os.path.relpath(path, ROOT).encode() + b"\0")
        _sha256_file(path, h)
    return h.hexdigest()


def _make(args, cwd, quiet, what):
    jobs = "-j%d" % max(1, min(os.cpu_count() or 1, 4))
    cmd = ["make", jobs] + args
    p = subprocess.run(cmd, cwd=cwd, capture_output=quiet, text=True)
    if p.returncode != 0:
        tail = (p.stdout + p.stderr).strip().splitlines()[-15:] if quiet else []
        more = "".join("\n  " + x for x in tail)
        raise BuildError("building %s failed (make exit %d)%s" % (what, p.returncode, more))


# Build (or find up to date) the unix port for bits with relaynode frozen in; its path.
# variant: (name, manifest lines, the files they freeze) for another build than relaynode's, in
# build/micropython-BITS-NAME/ (the bench's: microdot frozen, or no firmware at all); its
# manifest gets MicroPython's asyncio first, as relaynode's does.
def build(bits=32, source=None, force=False, quiet=False, variant=None):
    if bits not in (32, 64):
        raise BuildError("BITS must be 32 or 64, not %r" % bits)
    out = out_dir(bits, variant and variant[0])
    os.makedirs(out, exist_ok=True)
    tree, origin, commit = source_tree(source or source_default())
    if variant:
        manifest, text = write_variant_manifest(out, variant[1])
    else:
        manifest, text = write_manifest(out)
    stamp = os.path.join(out, "stamp")
    prog = os.path.join(out, "micropython")
    want = fingerprint(origin + ":" + commit, bits, text, variant and variant[2])
    if not force and os.path.exists(prog) and _read(stamp) == want:
        return prog
    check_toolchain(bits)
    say = (lambda m: None) if quiet else (lambda m: print("mpbuild: " + m, flush=True))
    say("MicroPython from %s (%d-bit), %s frozen in" % (tree, bits, variant[0] if variant else "relaynode"))
    if not os.path.exists(os.path.join(tree, "mpy-cross", "build", "mpy-cross")):
        say("building mpy-cross")
        _make(["-C", "mpy-cross"], tree, quiet, "mpy-cross")
    # The objects of another source (another MPY_DIR, a new snapshot, whose files may be older
    # than the objects) are not reused: make would take them as up to date.
    obj = os.path.join(out, "obj")
    if _read(os.path.join(obj, ".origin")) != origin:
        shutil.rmtree(obj, ignore_errors=True)
        os.makedirs(obj)
        with open(os.path.join(obj, ".origin"), "w") as f:
            f.write(origin)
    # MicroPython recompiles a frozen module only when its source is newer than its .mpy: a
    # changed manifest (its metadata, an opt level) would leave every .mpy as it was.
    with open(os.path.join(ROOT, "manifest.py"), "rb") as f:
        manifests = hashlib.sha256(text.encode() + b"\0" + f.read()).hexdigest()
    if _read(os.path.join(obj, ".manifests")) != manifests:
        shutil.rmtree(os.path.join(obj, "frozen_mpy"), ignore_errors=True)
        with open(os.path.join(obj, ".manifests"), "w") as f:
            f.write(manifests)
    args = ["-C", "ports/unix", "BUILD=" + obj, "FROZEN_MANIFEST=" + manifest] + FLAGS
    if bits == 32:
        args += ["CFLAGS_EXTRA=-m32", "LDFLAGS_EXTRA=-m32"]
    say("building the unix port")
    _make(args, tree, quiet, "the unix port")
    shutil.copy2(os.path.join(obj, "micropython"), prog)
    with open(stamp, "w") as f:
        f.write(want)
    say("built %s" % os.path.relpath(prog, ROOT))
    return prog


def main(argv=None):
    p = argparse.ArgumentParser(description="Build MicroPython's unix port with relaynode frozen in.")
    p.add_argument("--bits", type=int, choices=(32, 64), default=32, help="32: the ESP32's word size (gcc-multilib)")
    p.add_argument(
        "--mpy-dir", default=None, help="MicroPython checkout or source tarball (default: $MPY_DIR, else the snapshot)"
    )
    p.add_argument("--force", action="store_true", help="run make even when the stamp says it is up to date")
    p.add_argument("--quiet", action="store_true", help="print only errors and the interpreter's path")
    a = p.parse_args(argv)
    try:
        prog = build(a.bits, a.mpy_dir, a.force, a.quiet)
    except BuildError as e:
        print("mpbuild: %s" % e, file=sys.stderr)
        return 1
    print(os.path.relpath(prog, os.getcwd()) if not a.quiet else prog)
    return 0


if __name__ == "__main__":
    sys.exit(main())
