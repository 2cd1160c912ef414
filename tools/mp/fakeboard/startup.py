# The pretend board's start-up (MicroPython only). tools/pretend_board.py runs it as
# `micropython -i startup.py` after every reset; the REPL that -i opens afterwards is the
# board's REPL. As on the ESP32: the flash folder becomes /, boot.py runs, then main.py, except
# after a soft reset from the raw REPL (mpremote's), where only boot.py runs.
import json
import os
import sys

import machine  # noqa: F401  the fakes beside this file, loaded before / becomes the flash
import network  # noqa: F401


def _start():
    opts = json.loads(os.getenv("FAKEBOARD"))
    mode = opts["mode"]  # power, hard (machine.reset, a crash), soft, raw (soft, raw REPL)
    # The first thing printed tells the pretend board this process is up (Ctrl-C works now).
    if mode in ("soft", "raw"):
        print("MPY: soft reboot")
    else:
        print("pretend board: %s, flash %s" % ("power on" if mode == "power" else "hard reset", opts["flash"]))
    try:
        import vfs

        vfs.mount(_flash_vfs()(opts["flash"]), "/")
        os.chdir("/")
    except Exception as e:
        # Never a REPL on this computer's own files: the pretend board gives up.
        sys.print_exception(e)
        _end("USR1")
    sys.path.clear()
    sys.path.extend(("", ".frozen", "/lib"))  # the ESP32's path
    _romfs_partition()
    if _run("boot.py") and mode != "raw":
        _dns_port(opts.get("dns_port", 0))
        _board_address(opts.get("ip", "127.0.0.1"))
        _run("main.py")


# The flash folder as a filesystem: VfsPosix with two fixes, so it behaves like the board's.
def _flash_vfs():
    import vfs

    class Flash(vfs.VfsPosix):
        # VfsPosix builds both paths of a rename in one buffer, so renaming "/a" to "/b" fails
        # (ENOENT): give it paths relative to the current directory instead.
        def rename(self, old, new):
            return super().rename(self._relative(old), self._relative(new))

        def _relative(self, path):
            if not path.startswith("/"):
                return path
            cwd = self.getcwd().strip("/")
            return "../" * (cwd.count("/") + 1) * (cwd != "") + path[1:]

        # Entries with their size, as littlefs gives them (mpremote's `fs ls` shows it).
        def ilistdir(self, path):
            prefix = path if path in ("", "/") or path.endswith("/") else path + "/"
            for e in super().ilistdir(path):
                size = 0 if e[1] == 0x4000 else self.stat(prefix + e[0])[6]
                yield (e[0], e[1], e[2], size)

    return Flash


# A romfs partition (pretend_board.py --romfs): a file mapped outside the heap, its address in
# $RELAYNODE_ROMFS (tools/romfs.py run --writable). As on a MicroPython built with one: vfs gets
# rom_ioctl (what `mpremote romfs deploy` and tools/deploy.py use; a stand-in module in
# sys.modules, for the built-in vfs takes no new attributes), and a valid image is mounted at
# /rom with /rom and /rom/lib on sys.path, after '' (the flash).
def _romfs_partition():
    spec = os.getenv("RELAYNODE_ROMFS")
    if not spec:
        return
    import uctypes
    import vfs

    a, n = spec.split(":")
    n = int(n)
    part = uctypes.bytearray_at(int(a), n)
    block = 4096  # the ESP32's flash sector

    # vfs.rom_ioctl(op, partition, ...): 1 partitions, 2 the partition, 3 erase before writing
    # (length, or offset and length), 4 write (offset, data), 5 done writing, 6 block size.
    def rom_ioctl(op, *args):
        if op == 1:
            return 1
        if not args or args[0] != 0:
            return -19  # ENODEV
        if op == 2:
            return memoryview(part)
        if op == 3:
            start, size = (0, args[1]) if len(args) == 2 else (args[1], args[2])
            ff = b"\xff" * block
            for i in range(start - start % block, min(n, start + size), block):
                part[i : i + block] = ff  # erased flash reads as 0xFF
            return 4  # smallest write
        if op == 4:
            part[args[1] : args[1] + len(args[2])] = args[2]
            return 0
        if op in (5, 6):
            return 0 if op == 5 else block
        return -22  # EINVAL

    class Vfs:
        pass

    fake = Vfs()
    for name in dir(vfs):
        if not name.startswith("__"):
            setattr(fake, name, getattr(vfs, name))
    fake.rom_ioctl = rom_ioctl
    sys.modules["vfs"] = fake
    if part[:3] == b"\xd2\xcd\x31":
        try:
            vfs.mount(vfs.VfsRom(memoryview(part)), "/rom")
            sys.path[2:2] = ["/rom", "/rom/lib"]
        except Exception as e:
            print("pretend board: romfs partition not mounted:", e)


# Run a script from flash in the REPL's globals, as the board does; False when it failed.
def _run(name):
    try:
        with open(name) as f:
            code = compile(f.read(), name, "exec")
    except OSError:
        return True  # no such file: nothing to run
    try:
        exec(code, globals())
        return True
    except SystemExit:
        _end("TERM")  # sys.exit() in boot.py or main.py soft-resets the board
    except BaseException as e:  # KeyboardInterrupt (Ctrl-C) included: then the REPL
        sys.print_exception(e)
    return False


# End this process with a signal the pretend board reads (under -i, sys.exit() only leads to
# the REPL): TERM is a soft reset, USR1 gives up.
def _end(sig):
    os.system("kill -%s $PPID" % sig)
    while True:
        pass


# The captive portal's DNS (firmware/board.py DNS_PORT, 53 on the ESP32) answers on the
# pretend board's --dns-port instead, or not at all (0): port 53 of this computer is not the
# pretend board's to take.
def _dns_port(port):
    board = sys.modules.get("firmware.board")
    if board is not None and getattr(board, "DNS_PORT", None) == 53:
        board.DNS_PORT = port


# A server the node opens on 0.0.0.0 (every interface of the board) listens on the pretend
# board's address (127.0.0.1 unless --ip says otherwise). Ports below 1024 need root on a
# computer: without it they move up by 8000 (80 -> 8080), with a note on the console. The node
# listens through firmware.compat.start_server, wrapped here once boot.py has run (an update it
# rolls back changes that module) and before main.py imports the server, which takes it from
# compat. A firmware that cannot even import compat is left for main.py to report.
def _board_address(ip):
    try:
        from firmware import compat
    except Exception:
        return
    start_server = compat.start_server

    async def board_start_server(cb, host, port, *args, **kw):
        if host in ("0.0.0.0", ""):
            host = ip
        try:
            return await start_server(cb, host, port, *args, **kw)
        except OSError as e:
            if e.errno != 13 or port >= 1024:  # EACCES
                raise
        print("pretend board: port %d needs root here; serving on port %d instead" % (port, port + 8000))
        return await start_server(cb, host, port + 8000, *args, **kw)

    compat.start_server = board_start_server


_start()
