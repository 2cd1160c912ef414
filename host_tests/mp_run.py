# Minimal test runner for portable test modules (plain `def test_x():` functions with asserts).
# Written for the MicroPython unix port, runs on CPython too:
#   micropython -X heapsize=128K host_tests/mp_run.py host_tests/portable/test_websocket.py [...]
# Options: -k SUBSTRING runs only tests whose name contains it; -v prints each test and the
# traceback of each failure. Ends with "N passed, M failed"; exit status 1 when any failed.
# Test modules import with absolute names (`from host_tests.portable.fakes import ...`): the
# repo root and the file's folder are on sys.path, relative imports are not supported.
import gc
import sys

try:
    import io
except ImportError:
    io = None


def _dirname(path):
    i = path.rfind("/")
    if i < 0:
        return "."
    return path[:i] or "/"


def _basename(path):
    return path[path.rfind("/") + 1 :]


def _abspath(path):
    if path.startswith("/"):
        return path
    import os

    cwd = os.getcwd()
    while path.startswith("./"):
        path = path[2:]
    return cwd + "/" + path if cwd != "/" else "/" + path


# The traceback as text (MicroPython: sys.print_exception; CPython: traceback).
def _traceback(e):
    if io is None:
        return ""
    buf = io.StringIO()
    try:
        if hasattr(sys, "print_exception"):
            sys.print_exception(e, buf)
        else:
            import traceback

            traceback.print_exception(type(e), e, e.__traceback__, file=buf)
    except Exception:
        return ""
    return buf.getvalue()


# The innermost 'File "...", line N' of a traceback, shortened to "file.py:N".
def _where(tb):
    where = ""
    for line in tb.split("\n"):
        line = line.strip()
        if line.startswith('File "'):
            j = line.find('"', 6)
            k = line.find("line ", j)
            if j > 0 and k > 0:
                n = line[k + 5 :]
                c = n.find(",")
                if c >= 0:
                    n = n[:c]
                where = _basename(line[6:j]) + ":" + n
    return where


def _describe(e):
    msg = str(e)
    name = type(e).__name__
    return name + ": " + msg if msg else name


# Run a test file's source into a fresh module dict. A 128K heap cannot hold the parse tree
# of a long file, so the source is compiled in pieces cut before top-level `def`, `class` and
# decorator lines; blank lines in front keep tracebacks' line numbers right. The file's own
# folder goes first on sys.path so it can import helpers next to it.
def _load(path, budget=1000):
    name = _basename(path)
    if name.endswith(".py"):
        name = name[:-3]
    folder = _dirname(_abspath(path))
    if folder not in sys.path:
        sys.path.insert(0, folder)
    g = {"__name__": name, "__file__": path}
    chunk = []
    size = 0
    first = 1  # line number of chunk[0]
    lineno = 0
    prev_decorator = False
    with open(path) as f:
        for line in f:
            lineno += 1
            top = line[:4] == "def " or line[:6] == "class " or line[:1] == "@"
            if top and not prev_decorator and size > budget:
                _exec_chunk(chunk, first, path, g)
                chunk = []
                size = 0
                first = lineno
            if line[:1] not in (" ", "\t", "\n", "#", "\r"):
                prev_decorator = line[:1] == "@"
            chunk.append(line)
            size += len(line)
    _exec_chunk(chunk, first, path, g)
    return g


def _exec_chunk(lines, first, path, g):
    src = "\n" * (first - 1) + "".join(lines)
    del lines[:]
    code = compile(src, path, "exec")
    src = None
    gc.collect()
    exec(code, g)
    code = None
    gc.collect()


def _report(label, e, verbose):
    tb = _traceback(e)
    where = _where(tb)
    print("FAIL " + label + (" (" + where + ")" if where else "") + ": " + _describe(e))
    if verbose and tb:
        for line in tb.rstrip().split("\n"):
            print("    " + line)


def main(argv):
    # repo root = the folder above host_tests/, so `import firmware` works
    root = _dirname(_dirname(_abspath(argv[0])))
    if root not in sys.path:
        sys.path.insert(0, root)
    verbose = False
    pattern = None
    files = []
    i = 1
    while i < len(argv):
        a = argv[i]
        if a == "-v":
            verbose = True
        elif a == "-k" and i + 1 < len(argv):
            i += 1
            pattern = argv[i]
        else:
            files.append(a)
        i += 1
    if not files:
        print("usage: mp_run.py [-v] [-k SUBSTRING] TEST_FILE.py [...]")
        return 2
    passed = 0
    failed = 0
    for path in files:
        # each file's modules are dropped after its tests, so the next file has the heap
        loaded = list(sys.modules)
        p, f = _run_file(path, pattern, verbose)
        passed += p
        failed += f
        for k in list(sys.modules):
            if k not in loaded:
                del sys.modules[k]
        gc.collect()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


# Load one test file and run its tests; (passed, failed).
def _run_file(path, pattern, verbose):
    modname = _basename(path)
    if modname.endswith(".py"):
        modname = modname[:-3]
    try:
        mod = _load(path)
    except Exception as e:
        _report(modname + " (import)", e, verbose)
        return 0, 1
    names = []
    for n in mod:
        if n.startswith("test_") and (pattern is None or pattern in n) and callable(mod[n]):
            names.append(n)
    names.sort()  # module dicts are unordered on MicroPython
    passed = 0
    failed = 0
    for n in names:
        label = modname + "." + n
        gc.collect()
        try:
            mod[n]()
        except Exception as e:
            _report(label, e, verbose)
            failed += 1
        else:
            passed += 1
            if verbose:
                print("ok   " + label)
    return passed, failed


if __name__ == "__main__":
    sys.exit(main(sys.argv))
