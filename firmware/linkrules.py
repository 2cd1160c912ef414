# What links do, with no I/O: the rules that keep relays of two nodes in step. A rule is a
# tuple (kind, local relay, remote name, mode, on, ms): mode is the mirror direction
# ("both", "to_remote", "from_remote") or the trigger action ("set_on", "set_off", "toggle",
# "pulse"); on ("change", True, False) and ms only matter to triggers. Sends are
# (type, remote name, value): value is on for "set", ms for "pulse", None for "toggle".
from .compat import const

MAX_HOPS = const(8)  # a change is not passed on past this many links (toggle rings end)


# Rules from their validated config specs, with the local relays looked up in bank.
def make(bank, specs):
    return [
        (r["kind"], bank.find(r["local"]), r["remote"], r.get("direction") or r["action"], r.get("on"), r.get("ms"))
        for r in specs
    ]


# The peer's state message: (its name, {lower-case remote name: on}, [rule remote names it
# lacks]). host names the peer when the message does not.
def read_state(rules, msg, host):
    remote = {}
    for r in msg.get("relays") or ():
        remote[str(r.get("name")).lower()] = r.get("on") is True
    missing = [rule[2] for rule in rules if rule[2].lower() not in remote]
    return str(msg.get("node") or host), remote, missing


# On (re)connect: mirrors that follow the peer take its state (follows: [(local, on)]); mirrors
# to the peer send ours (sends). Nothing missed while down is replayed.
def resync(rules, bad, remote):
    sends = []
    follows = []
    for kind, local, name, mode, _, _ in rules:
        if kind == "mirror" and name.lower() not in bad:
            if mode == "to_remote":
                sends.append(("set", name, local.on))
            else:
                follows.append((local, remote[name.lower()]))
    return sends, follows


# A relay message of the peer: what mirrors that follow it do, [(local, on, origin, hops)];
# nothing for our own change coming back (me: our name) or one that travelled far enough.
def remote_change(rules, msg, me, peer):
    name = str(msg.get("name")).lower()
    on = msg.get("on")
    origin = msg.get("origin") or peer
    hops = msg.get("hops", 0)
    out = []
    if isinstance(on, bool) and isinstance(hops, int) and origin != me and hops < MAX_HOPS:
        for kind, local, rname, mode, _, _ in rules:
            if kind == "mirror" and mode != "to_remote" and rname.lower() == name:
                out.append((local, on, origin, hops + 1))
    return out


# Local changes [(relay, cause)]: what the rules send to the peer. bad: lower-case remote
# names the peer lacks.
def outgoing(rules, bad, changes):
    sends = []
    for r, _ in changes:
        for kind, local, name, mode, on, ms in rules:
            if local is not r or name.lower() in bad:
                continue
            if kind == "mirror":
                if mode != "from_remote":
                    sends.append(("set", name, r.on))
            elif on == "change" or on == r.on:
                if mode == "pulse":
                    sends.append(("pulse", name, ms))
                elif mode == "toggle":
                    sends.append(("toggle", name, None))
                else:
                    sends.append(("set", name, mode == "set_on"))
    return sends
