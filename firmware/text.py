# Text from peers, made safe for the log.


# s (text from a peer) for one log line: control characters and non-ASCII as escapes, cut to
# limit characters. Clean short text is returned as it is.
def printable(s, limit=80):
    s = str(s)
    if len(s) <= limit and s.isprintable() if hasattr(s, "isprintable") else False:
        return s
    out = []
    for ch in s[:limit]:
        o = ord(ch)
        if 32 <= o < 127:
            out.append(ch)
        elif o < 256:
            out.append("\\x%02x" % o)
        else:
            out.append("\\u%04x" % o)
    return "".join(out) + ("..." if len(s) > limit else "")
