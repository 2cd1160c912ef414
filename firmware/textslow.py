# The slow paths of text.py, loaded on first need only: the full JSON parser (RFC 8259) for
# what text.loads' fast path does not take (escapes, blanks other than spaces, nesting, long
# objects), text escaped for the log, and UTF-8 repaired.
from .text import _LIT

_WS = (32, 9, 10, 13)  # JSON whitespace
_NUM = b"-+.eE0123456789"
_ESC = b'"\\/bfnrt'
_ESCTO = b'"\\/\x08\x0c\n\r\t'
_HEX = b"0123456789abcdefABCDEF"
_SHOW = {92: "\\\\", 10: "\\n", 13: "\\r", 9: "\\t"}


# The value of the JSON text in b (bytes), as text.loads has it: one pass, once around the
# loop per token, strings found and cut with C-level find().
def parse(b, depth):
    n = len(b)
    stack = []  # open arrays and objects
    keys = []  # the key each open object waits to fill
    i = 0
    try:
        while True:
            # a value starts at i (after blanks)
            c = b[i]
            while c in _WS:
                i += 1
                c = b[i]
            if c == 34:  # "
                v, i = _string(b, i + 1)
            elif c == 123 or c == 91:  # { [
                if len(stack) >= depth:
                    raise ValueError
                v = {} if c == 123 else []
                i += 1
                while b[i] in _WS:
                    i += 1
                if b[i] == c + 2:  # } ]: empty
                    i += 1
                else:
                    stack.append(v)
                    if c == 123:
                        i = _key(b, i, keys)
                    continue
            elif c in (116, 102, 110):  # t f n
                t = b[i : i + (5 if c == 102 else 4)]
                v = _LIT.get(t, _LIT)
                if v is _LIT:
                    raise ValueError
                i += len(t)
            else:
                j = i
                while j < n and b[j] in _NUM:
                    j += 1
                v = _number(b[i:j])
                i = j
            # the value is done: put it in its container, then a comma or the container's end
            while True:
                if not stack:
                    while i < n and b[i] in _WS:
                        i += 1
                    if i != n:
                        raise ValueError
                    return v
                top = stack[-1]
                if type(top) is dict:
                    top[keys.pop()] = v
                else:
                    top.append(v)
                while b[i] in _WS:
                    i += 1
                c = b[i]
                i += 1
                if c == 44:  # ,
                    if type(top) is dict:
                        i = _key(b, i, keys)
                    break
                if c != (125 if type(top) is dict else 93):
                    raise ValueError
                v = stack.pop()
    except IndexError:
        raise ValueError


# Read an object key at i (after blanks) and its colon onto keys; where the value starts.
def _key(b, i, keys):
    while b[i] in _WS:
        i += 1
    if b[i] != 34:
        raise ValueError
    k, i = _string(b, i + 1)
    while b[i] in _WS:
        i += 1
    if b[i] != 58:  # :
        raise ValueError
    keys.append(k)
    return i + 1


# The string whose text starts at b[i] (just past its quote), and the index past its end quote.
def _string(b, i):
    j = b.find(b'"', i)
    if j < 0:
        raise ValueError
    k = b.find(b"\\", i, j)
    if k < 0:
        t = b[i:j]
        if t and min(t) < 32:
            raise ValueError
        return str(t, "utf-8"), j + 1
    out = bytearray()
    i0 = i
    while True:
        if k < 0 or j < k:  # no escape before the quote: the end
            if min(b[i0:j]) < 32:
                raise ValueError
            out += b[i:j]
            return str(out, "utf-8"), j + 1
        out += b[i:k]
        e = b[k + 1]
        x = _ESC.find(bytes((e,)))
        if x >= 0:
            out.append(_ESCTO[x])
            i = k + 2
        elif e == 117:  # u
            cp = _hex4(b, k + 2)
            i = k + 6
            if 0xD800 <= cp < 0xE000:
                lo = _hex4(b, k + 8) if cp < 0xDC00 and b[k + 6 : k + 8] == b"\\u" else 0
                if not 0xDC00 <= lo < 0xE000:
                    raise UnicodeError
                cp = 0x10000 + ((cp - 0xD800) << 10) + lo - 0xDC00
                i = k + 12
            out += chr(cp).encode()
        else:
            raise ValueError
        if i > j:  # the quote found was an escaped one
            j = b.find(b'"', i)
            if j < 0:
                raise ValueError
        k = b.find(b"\\", i, j)


def _hex4(b, i):
    h = b[i : i + 4]
    if len(h) != 4 or h.strip(_HEX):
        raise ValueError
    return int(h, 16)


# A JSON number (RFC 8259 section 6): -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
def _number(t):
    m = t[1:] if t[:1] == b"-" else t
    if m.isdigit() and (m[0] != 48 or len(m) == 1):
        return int(t)
    m, e, x = m.replace(b"E", b"e").partition(b"e")
    m, d, f = m.partition(b".")
    if e and x[:1] in (b"+", b"-"):
        x = x[1:]
    if not m.isdigit() or (m[0] == 48 and len(m) > 1) or (d and not f.isdigit()) or (e and not x.isdigit()):
        raise ValueError
    return float(t)


# text.printable(s, limit) for text that needs escapes or a cut.
def escape(s, limit):
    if not isinstance(s, (str, bytes, bytearray)):
        s = str(s)  # None, a number, a list from a peer's JSON
    if isinstance(s, str):
        try:
            b = s.encode()
        except UnicodeError:  # CPython: a lone surrogate
            b = s.encode("utf-8", "surrogatepass")
        u = True
    else:
        b = bytes(s)
        u = False
    out = []
    n = 0
    i = 0
    while i < len(b) and n <= limit:
        c = b[i]
        i += 1
        e = _SHOW.get(c) or (chr(c) if 31 < c < 127 else "\\x%02x" % c)
        if u and c > 0xBF:
            m = 2 if c < 0xE0 else 3 if c < 0xF0 else 4
            try:
                cp = ord(str(b[i - 1 : i - 1 + m], "utf-8"))
                if not 0xD800 <= cp < 0xE000:
                    e = ("\\u%04x" if cp < 0x10000 else "\\U%08x") % cp
                    i += m - 1
            except (UnicodeError, TypeError):
                pass
        out.append(e)
        n += len(e)
    r = "".join(out)
    if len(r) > limit:
        r = r[: limit - 3] + "..."
    return r


# b (the UTF-8 of a str, encoded surrogates in it) as a str with each surrogate pair joined
# into its character and each lone surrogate replaced by U+FFFD.
def repair(b):
    i = b.find(b"\xed")
    out = bytearray()
    k = 0
    n = len(b)
    while i >= 0:
        if i + 1 < n and b[i + 1] >= 0xA0:
            out += b[k:i]
            k = min(i + 3, n)
            t = b[k : k + 3]
            if b[i + 1] < 0xB0 and k + 2 < n and t[0] == 0xED and t[1] >= 0xB0:
                hi = ((b[i + 1] & 15) << 6) | (b[i + 2] & 63)
                lo = ((t[1] & 15) << 6) | (t[2] & 63)
                out += chr(0x10000 + (hi << 10) + lo).encode()
                k += 3
            else:
                out += b"\xef\xbf\xbd"
        i = b.find(b"\xed", max(i + 1, k))
    out += b[k:]
    return str(out, "utf-8")
