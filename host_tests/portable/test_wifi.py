# Tests for firmware/wifi.py: the Wi-Fi keeper on a fake clock with fake interfaces (tries in
# the background with their pauses, the access point stopped once the network is joined and
# started after wifi.ap_after_s without one, the access point's password), and its asyncio
# task with the captive portal's DNS on a real UDP socket on 127.0.0.1. Portable: plain
# functions and asserts, run by pytest on CPython and by host_tests/mp_run.py on the
# MicroPython unix port.
import asyncio
import socket

from firmware import wifi
from firmware.config import validate
from host_tests.portable.fakes import FakeClock, FakeWlan

STEP = 100  # ms between polls in these tests


def config(**wifi_section):
    return validate({"name": "barn", "wifi": wifi_section, "relays": [{"name": "L", "pin": 4}], "http": {"port": 8080}})


# A keeper as boot leaves it. online: the station joined at boot; else the access point is up.
class Rig:
    def __init__(self, air=None, online=False, ssid="home", password="secret12", **wifi_section):
        self.clock = FakeClock(0)
        self.air = {} if air is None else air
        self.sta = FakeWlan(self.air, "192.168.1.50", self.clock)
        self.ap = FakeWlan({}, "192.168.4.1")
        self.lines = []
        self.changes = []
        self.sta.active(True)
        if online:
            self.sta.connect(ssid, password)
            assert self.sta.isconnected()
            del self.sta.calls[:]
        else:
            wifi.start_ap(self.ap, "barn")
        cfg = config(**wifi_section)
        self.k = wifi.Keeper(self.sta, self.ap, cfg, ssid, password, 0, (FakeWlan.WRONG_PASSWORD,), self.lines.append)
        self.k.changed = self.changes.append

    # Poll every STEP ms until the clock reads `until`.
    def run(self, until):
        while self.clock.now < until:
            self.clock.advance(STEP)
            self.k.poll(self.clock.now)

    def tries(self):
        return [t for t, what in self.sta.calls if what.startswith("connect")]

    def log(self):
        return "\n".join(self.lines)


def test_with_no_network_configured_it_only_waits():
    r = Rig(ssid="", password="")
    r.run(600000)
    assert r.sta.calls == []
    assert r.ap.on and r.k.ap
    assert r.lines == [] and r.changes == []


def test_tries_again_in_the_background_with_growing_pauses():
    r = Rig()
    r.run(1200000)  # 20 minutes without the network
    # each try lasts 10 s; the pauses after them: 10, 20, 40, 80, 160, 300, 300 s
    assert r.tries() == [10000, 40000, 90000, 180000, 350000, 660000, 970000]
    assert [w for _, w in r.sta.calls[:4]] == ["disconnect", "connect home", "disconnect", "connect home"]
    assert r.ap.on and r.k.ap and r.changes == []  # the access point stays up throughout
    assert "wifi: home not joined; next try in 10 s" in r.lines
    assert "wifi: home not joined; next try in 300 s" in r.lines
    assert "next try in 600 s" not in r.log()


def test_a_wrong_password_ends_a_try_at_once():
    r = Rig(air={"home": "other-pass"})
    r.run(45000)
    assert r.tries() == [10000, 30100]  # the status said so at the first poll of the try
    assert [w for _, w in r.sta.calls] == ["disconnect", "connect home", "disconnect", "connect home", "disconnect"]


def test_joins_the_network_when_it_appears_and_stops_the_access_point():
    r = Rig()
    r.run(45000)  # the second try began at 40 s
    assert r.ap.on
    r.air["home"] = "secret12"
    r.run(45300)
    assert not r.ap.on and not r.k.ap
    assert r.changes == [False]
    assert r.lines[-2:] == ["wifi: access point barn stopped", "wifi: joined home; relaynode: open http://192.168.1.50:8080/"]
    assert r.tries() == [10000, 40000]  # joined within the try that was running
    r.run(3600000)
    assert r.tries() == [10000, 40000]  # and stays: no more tries, no access point
    assert not r.ap.on


def test_a_lost_network_is_tried_again_and_the_access_point_waits_for_ap_after_s():
    r = Rig(air={"home": "secret12"}, online=True, ap_after_s=30)
    r.run(5000)
    assert r.sta.calls == [] and not r.ap.on
    del r.air["home"]
    r.run(34900)
    assert r.log().endswith("wifi: lost home; trying to join it again\nwifi: home not joined; next try in 10 s")
    assert r.tries() == [5100, 25100]  # at once, then after 10 s
    assert not r.ap.on and r.changes == []
    r.run(35100)  # 30 s without the network
    assert r.ap.on and r.k.ap and r.changes == [True]
    assert r.ap.settings == {"essid": "barn", "authmode": 0}
    assert "wifi: no network for 30 s: started the access point barn at 192.168.4.1" in r.lines
    r.air["home"] = "secret12"
    r.run(80000)
    assert not r.ap.on and r.changes == [True, False]
    assert r.lines[-1] == "wifi: joined home; relaynode: open http://192.168.1.50:8080/"
    # lost again later: the pauses start from 10 s again
    del r.air["home"]
    r.run(100000)
    assert r.log().endswith("wifi: home not joined; next try in 10 s")


def test_a_short_outage_never_starts_the_access_point():
    r = Rig(air={"home": "secret12"}, online=True)  # ap_after_s: 120 by default
    del r.air["home"]
    r.run(60000)
    r.air["home"] = "secret12"
    r.run(200000)
    assert not r.ap.on and r.changes == []
    assert r.lines[-1] == "wifi: joined home; relaynode: open http://192.168.1.50:8080/"


def test_ap_password_makes_the_access_point_wpa2():
    ap = FakeWlan()
    assert wifi.start_ap(ap, "barn", "s3cret-pw") == "192.168.1.50"
    assert ap.on and ap.settings == {"essid": "barn", "password": "s3cret-pw", "authmode": 3}
    r = Rig(air={"home": "secret12"}, online=True, ap_after_s=1, ap_password="s3cret-pw")
    del r.air["home"]
    r.run(1200)
    assert r.ap.settings == {"essid": "barn", "password": "s3cret-pw", "authmode": 3}


def test_a_station_that_refuses_to_connect_is_logged_and_tried_later():
    r = Rig()

    def broken(ssid, password):
        raise OSError(5)

    r.sta.connect = broken
    r.run(31000)
    assert len([x for x in r.lines if x.startswith("wifi: cannot try home: OSError(5")]) == 2, r.lines
    assert r.ap.on


# ---------------------------------------------------------------- the task and the DNS socket


# A keeper stand-in for keep(): the access point's state is set by the test.
class StubKeeper:
    def __init__(self):
        self.ap = False
        self.ap_ip = "127.0.0.1"
        self.polls = 0

    def poll(self, now):
        self.polls += 1
        return 50


# True when a UDP socket can be bound to 127.0.0.1:port (nobody holds it).
def can_bind(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_udp_port():
    for port in range(45353, 45453):
        if can_bind(port):
            return port
    assert False, "no free UDP port on 127.0.0.1"


# Send the packets to 127.0.0.1:port at once and collect the replies, waiting in the event
# loop at most `wait` seconds for them all.
async def ask_all(port, packets, wait=2.0):
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.setblocking(False)
    replies = []
    try:
        to = socket.getaddrinfo("127.0.0.1", port)[0][-1]
        for p in packets:
            c.sendto(p, to)
        for _ in range(int(wait / 0.02)):
            try:
                replies.append(c.recvfrom(512)[0])
            except OSError:
                if len(replies) == len(packets):
                    break
                await asyncio.sleep(0.02)
        return replies
    finally:
        c.close()


async def ask(port, packet, wait=2.0):
    replies = await ask_all(port, [packet], wait)
    return replies[0] if replies else None


QUERY = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01"


def test_keep_answers_dns_only_while_the_access_point_is_up():
    port = free_udp_port()
    k = StubKeeper()
    lines = []

    async def main():
        task = asyncio.create_task(wifi.keep(k, port, lines.append))
        try:
            await asyncio.sleep(0.2)
            assert k.polls >= 2  # polled as often as poll() asked
            assert await ask(port, QUERY, 0.4) is None  # no access point: no DNS
            k.ap = True
            await asyncio.sleep(0.2)
            reply = await ask(port, QUERY)
            assert reply is not None and reply[:4] == b"\x12\x34\x85\x00", reply
            assert reply.endswith(b"\x7f\x00\x00\x01")  # 127.0.0.1
            assert await ask(port, b"\x00" * 11, 0.4) is None  # malformed: no reply, nothing breaks
            # more than one round's worth at once (8 a round): each is answered, in turn
            many = [bytes((0, i)) + QUERY[2:] for i in range(20)]
            replies = await ask_all(port, many)
            assert [r[:2] for r in replies] == [q[:2] for q in many]
            k.ap = False
            await asyncio.sleep(0.3)
            assert await ask(port, QUERY, 0.4) is None
            assert can_bind(port)  # the socket was closed
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

    asyncio.run(main())
    assert lines == ["dns: every name is 127.0.0.1 while the access point is up"]


def test_keep_goes_on_without_dns_when_the_port_is_taken():
    port = free_udp_port()
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(socket.getaddrinfo("127.0.0.1", port)[0][-1])
    k = StubKeeper()
    k.ap = True
    lines = []

    async def main():
        task = asyncio.create_task(wifi.keep(k, port, lines.append))
        await asyncio.sleep(0.3)
        polls = k.polls
        await asyncio.sleep(0.2)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        return polls

    try:
        polls = asyncio.run(main())
    finally:
        taken.close()
    assert polls >= 3 and k.polls > polls  # the keeper still polled
    assert len(lines) == 1 and lines[0].startswith("dns: no captive portal on port %d:" % port), lines


def test_keep_survives_a_failing_poll_without_spinning():
    k = StubKeeper()
    lines = []

    def broken(now):
        k.polls += 1
        raise ValueError("boom")

    k.poll = broken

    async def main():
        task = asyncio.create_task(wifi.keep(k, 0, lines.append))
        await asyncio.sleep(0.5)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass

    asyncio.run(main())
    assert k.polls == 1, k.polls  # tried again a second later, not at once
    assert len(lines) == 1 and lines[0].startswith("wifi: ValueError"), lines
