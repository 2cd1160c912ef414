# Keep the node on Wi-Fi: while the configured network cannot be joined, try it again in the
# background (short tries, 10 s apart at first, doubling to 5 min), run the access point when
# there is no network, stop it once the network is joined, and answer DNS for every name while
# it is up (a captive portal). The station and access point are the board's network.WLAN
# objects, passed in: Keeper is a state machine driven by poll(now), with no sleeps and no
# asyncio, so tests run it on a fake clock with fake interfaces; keep() is its asyncio task.
from .compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms

BACKOFF_MIN_MS = const(10000)  # pause after the first failed try
BACKOFF_MAX_MS = const(300000)  # the longest pause between tries
TRY_MS = const(10000)  # one try: then the radio is left to the access point again
_POLL_MS = const(1000)  # how often the connection is looked at while nothing happens
_TRY_POLL_MS = const(250)  # ... and during a try
_DNS_POLL_MS = const(100)  # how often the DNS socket is read while the access point is up
_AUTH_OPEN = const(0)  # network.AUTH_OPEN and AUTH_WPA2_PSK on the ESP32
_AUTH_WPA2_PSK = const(3)
_IDLE = const(0)  # no network configured: wait for setup
_ONLINE = const(1)
_TRYING = const(2)
_WAITING = const(3)  # between tries


# Start the access point `ap` (a WLAN) named `name`, WPA2 with `password`, open without one;
# returns its address.
def start_ap(ap, name, password=""):
    ap.active(True)
    if password:
        ap.config(essid=name, password=password, authmode=_AUTH_WPA2_PSK)
    else:
        ap.config(essid=name, authmode=_AUTH_OPEN)
    return ap.ifconfig()[0]


def _nothing(ap_up):
    pass


class Keeper:
    # sta, ap: the station and access-point WLANs, as boot left them (the station joined, or
    # the access point up); cfg: the validated config (name, wifi.ap_password, wifi.ap_after_s,
    # http.port); ssid, password: the network to keep (ssid "": none, wait for setup); now:
    # ticks_ms(); failed: station statuses that end a try early (a wrong password, no such
    # network). changed(ap_up) is called after the access point went up or down.
    def __init__(self, sta, ap, cfg, ssid, password, now, failed=(), log=print):
        self.sta = sta
        self.ap_if = ap
        self.name = cfg["name"]
        self.ap_password = cfg["wifi"]["ap_password"]
        self.ap_after = cfg["wifi"]["ap_after_s"] * 1000
        port = cfg["http"]["port"]
        self.port = "" if port == 80 else ":%d" % port
        self.ssid = ssid
        self.password = password
        self.failed = failed
        self.log = log
        self.changed = _nothing
        self.ap = bool(ap.active())
        self.ap_ip = ap.ifconfig()[0] if self.ap else None
        self.lost_at = now  # since when there has been no connection
        self.backoff = BACKOFF_MIN_MS
        self.next_at = now
        self.tried_at = now
        if not ssid:
            self.state = _IDLE
        elif sta.isconnected():
            self.state = _ONLINE
        else:  # boot tried already: the next try after a pause
            self._wait(now)

    # Look at the connection and take the next step; returns the ms until poll is worth
    # calling again.
    def poll(self, now):
        state = self.state
        if state == _IDLE:
            return _POLL_MS
        sta = self.sta
        if state == _ONLINE:
            if sta.isconnected():
                return _POLL_MS
            self.log("wifi: lost %s; trying to join it again" % self.ssid)
            self.lost_at = now
            self.backoff = BACKOFF_MIN_MS
            self._try(now)
        elif state == _TRYING:
            if sta.isconnected():
                self._joined()
                return _POLL_MS
            if ticks_diff(now, self.tried_at) >= TRY_MS or sta.status() in self.failed:
                self._wait(now)
        elif ticks_diff(now, self.next_at) >= 0:
            self._try(now)
        if not self.ap and ticks_diff(now, self.lost_at) >= self.ap_after:
            self.ap_ip = start_ap(self.ap_if, self.name, self.ap_password)
            self.ap = True
            self.log(
                "wifi: no network for %d s: started the access point %s at %s"
                % (self.ap_after // 1000, self.name, self.ap_ip)
            )
            self.changed(True)
        return _TRY_POLL_MS if self.state == _TRYING else _POLL_MS

    def _try(self, now):
        self.tried_at = now
        try:
            self.sta.active(True)
            self.sta.connect(self.ssid, self.password)
        except OSError as e:
            self.log("wifi: cannot try %s: %r" % (self.ssid, e))
            self._wait(now)
            return
        self.state = _TRYING

    # A try failed: stop it (the station's own retries would keep the radio from the access
    # point) and pause before the next, each pause twice the last, up to BACKOFF_MAX_MS.
    def _wait(self, now):
        try:
            self.sta.disconnect()
        except OSError:
            pass
        self.state = _WAITING
        self.next_at = ticks_add(now, self.backoff)
        self.log("wifi: %s not joined; next try in %d s" % (self.ssid, self.backoff // 1000))
        self.backoff = min(self.backoff * 2, BACKOFF_MAX_MS)

    def _joined(self):
        self.state = _ONLINE
        self.backoff = BACKOFF_MIN_MS
        ip = self.sta.ifconfig()[0]
        if self.ap:
            self.ap_if.active(False)
            self.ap = False
            self.log("wifi: access point %s stopped" % self.name)
            self.changed(False)
        self.log("wifi: joined %s; relaynode: open http://%s%s/" % (self.ssid, ip, self.port))


# The captive portal's UDP side: a non-blocking socket on ip:port, read by serve() from the
# keep() task (MicroPython's asyncio has no UDP). Raises OSError when the port cannot be had.
class Portal:
    def __init__(self, ip, port):
        import socket
        from . import dns  # loaded only while the access point is up

        self.ip = dns.ip_bytes(ip)
        self.answer = dns.answer
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(socket.getaddrinfo(ip, port)[0][-1])
            s.setblocking(False)
        except Exception:
            s.close()
            raise
        self.sock = s

    # Answer what has arrived, at most `most` queries (the rest waits for the next round).
    def serve(self, most=8):
        for _ in range(most):
            try:
                packet, peer = self.sock.recvfrom(512)  # dns.MAX_PACKET
            except OSError:  # nothing more (EAGAIN)
                return
            reply = self.answer(packet, self.ip)
            if reply is not None:
                try:
                    self.sock.sendto(reply, peer)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


# The task that drives keeper: polls it when due, and while the access point is up answers
# DNS on dns_port of its address (0: no DNS). Never returns; one failing round is logged.
async def keep(keeper, dns_port=53, log=print):
    portal = None
    refused = False  # the DNS port could not be had: not tried again while the access point stays up
    due = ticks_ms()
    while True:
        try:
            now = ticks_ms()
            if ticks_diff(now, due) >= 0:
                due = ticks_add(now, _POLL_MS)  # stays when poll raises: no busy loop
                due = ticks_add(now, keeper.poll(now))
            if not keeper.ap:
                refused = False
                if portal is not None:
                    portal.close()
                    portal = None
            elif portal is None and dns_port and not refused:
                try:
                    portal = Portal(keeper.ap_ip, dns_port)
                    log("dns: every name is %s while the access point is up" % keeper.ap_ip)
                except Exception as e:
                    refused = True
                    log("dns: no captive portal on port %d: %r" % (dns_port, e))
            if portal is not None:
                portal.serve()
        except Exception as e:  # keep the task alive whatever one round does
            log("wifi: %r" % e)
        wait = ticks_diff(due, ticks_ms())
        await sleep_ms(max(0, min(wait, _DNS_POLL_MS) if portal is not None else wait))
