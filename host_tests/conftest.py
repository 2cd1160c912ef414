# Shared pytest setup for host_tests/.
import os
import sys

# The repo root on sys.path, so tests (including host_tests/portable/, which MicroPython runs
# too) can `import firmware` however pytest is started.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


# ---- node subprocess fixtures (tools/harness.py) ----
import pytest  # noqa: E402

from tools.harness import Node, NodeError, find_micropython, MICROPYTHON_MISSING  # noqa: E402


# Every test that takes `runtime` runs once per runtime. A missing MicroPython is a failure,
# never a skip: the firmware must be checked on the runtime the board uses.
@pytest.fixture(params=["cpython", "micropython"])
def runtime(request):
    if request.param == "micropython" and find_micropython() is None:
        pytest.fail(MICROPYTHON_MISSING)
    return request.param


# A factory: node(**kw) starts a node on `runtime` (MicroPython with a 128K heap) and waits
# until it serves; every node started is stopped and its temp files removed afterwards.
# Keyword arguments go to tools.harness.Node (relays=, limits=, echo=, max_message=, ...).
@pytest.fixture
def node(runtime):
    started = []

    def start(**kw):
        kw.setdefault("runtime", runtime)
        kw.setdefault("heapsize", "128K")
        n = Node(**kw)
        started.append(n)
        try:
            n.start()
        except NodeError as e:
            pytest.fail(str(e))
        return n

    yield start
    for n in started:
        n.cleanup()


# A factory: pages(n, **kw) opens a host_tests.pages.Page of node n (keywords: query=, path=,
# origin=, state=, ...); pages(n, count, **kw) opens count of them and gives a list. Every
# page opened is closed afterwards.
@pytest.fixture
def pages():
    from host_tests.pages import Page

    opened = []

    def open_(n, count=None, **kw):
        new = [Page(n, **kw) for _ in range(count or 1)]
        opened.extend(new)
        return new if count else new[0]

    yield open_
    for p in opened:
        p.close()
