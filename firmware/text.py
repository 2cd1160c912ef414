# Text from peers: a strict JSON parser (RFC 8259) that gives the same answer on MicroPython
# and CPython, text made valid UTF-8, and a way to put any text on one log line. Only the
# common cases are here; the rest is in textslow.py, loaded on first need.

_LIT = {b"true": True, b"false": False, b"null": None}
# printable ASCII without the backslash, most frequent first (strip() searches it in order)
_OK = " etaoinsrhldcumfpgwybvkxjqz:\"-,.'_/0123456789ETAOINSRHLDCUMFPGWYBVKXJQZ()[]{}!#$%&*+;<=>?@^`|~"


# The value of the JSON text s (str or bytes, not bytearray). ValueError for anything RFC 8259
# refuses, nesting deeper than depth, NaN and Infinity; UnicodeError (a ValueError too, so catch it
# first) for an escaped lone surrogate. A surrogate pair escaped as two \u escapes becomes its
# one character, so every string returned is valid UTF-8. No recursion. depth: 8 by default,
# commands and state files are flat.
def loads(s, depth):
    b = s.encode() if isinstance(s, str) else s  # CPython: UnicodeError for a surrogate
    if not _good(b):
        raise UnicodeError  # an encoded surrogate: MicroPython decodes one without a word
    if b is s:
        try:
            str(b, "utf-8")
        except UnicodeError:
            raise ValueError
    if b.startswith(b"{") and b"\\" not in b and min(b) > 31:
        v = _flat(b)
        if v is not None:
            return v
    from .textslow import parse  # loaded on first need: most commands never need it

    return parse(b, depth)


# The common case in a few C-level calls: a flat object of strings, literals and small whole
# numbers, with no escapes or control characters. Split at the quotes, the odd parts are the
# strings; what lies between them must be exactly a colon, a comma or "}" (and a scalar).
# None for anything else: the full parser then decides, with the same result.
def _flat(b):
    p = b.split(b'"', 32)  # a longer object goes to the full parser: bounded heap here
    n = len(p)
    if p[0].rstrip(b" ") != b"{":
        return None
    d = {}
    i = 1
    while i + 1 < n:
        o = p[i + 1].strip(b" ")
        if o == b":" and i + 3 < n:
            v = str(p[i + 2], "utf-8")
            o = p[i + 3].strip(b" ")
            j = i + 4
        elif o[:1] == b":" and len(o) > 2:
            t = o[1:-1].strip(b" ")
            v = _LIT.get(t, _LIT)
            if v is _LIT:
                if not t.isdigit() or (t[0] == 48 and len(t) > 1):
                    return None
                v = int(t)
            o = o[-1:]
            j = i + 2
        else:
            return None
        d[str(p[i], "utf-8")] = v
        i = j
        if o == b"}":
            return d if i == n else None
        if o != b",":
            return None
    return None


# s (str or bytes; anything else as str(s)) made safe for one log line: control characters,
# the backslash and anything not ASCII as escapes (\n, \x00, \u00e9, \U0001f355), cut to at
# most limit characters with "..." at the end. Clean short text comes back as it is, with
# nothing allocated.
def printable(s, limit):
    if isinstance(s, str) and len(s) <= limit and not s.strip(_OK):
        return s
    from .textslow import escape

    return escape(s, limit)


# s as text that encodes to valid UTF-8: s itself when it already does (the common case: one
# encode() and one find()), else with each surrogate pair joined into its character and each
# lone surrogate replaced by U+FFFD. MicroPython's json makes such strings from \u escapes.
def utf8(s):
    try:
        b = s.encode()
    except UnicodeError:  # CPython: a surrogate
        b = s.encode("utf-8", "surrogatepass")
    if _good(b):
        return s
    from .textslow import repair

    return repair(b)


# True when b holds no encoded surrogate (ED A0..BF).
def _good(b):
    i = b.find(b"\xed")
    while i >= 0:
        if i + 1 < len(b) and b[i + 1] >= 0xA0:
            return False
        i = b.find(b"\xed", i + 1)
    return True
