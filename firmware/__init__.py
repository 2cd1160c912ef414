# relaynode firmware: the modules that go onto the board.
VERSION = "0.1.0"


# Take modules of this package (by name, "config") out of sys.modules and out of the
# package, their dicts emptied so that a stale pointer to one (MicroPython's GC is
# conservative) cannot keep its functions in the heap: the code of what is needed only for a
# while (at boot, for a config change, a schedule edit) goes back to the heap. The next
# import loads it again.
def forget(*names):
    import sys

    pkg = sys.modules[__name__]
    for name in names:
        mod = sys.modules.pop(__name__ + "." + name, None)
        if name in pkg.__dict__:
            delattr(pkg, name)
        if mod is not None:
            mod.__dict__.clear()
