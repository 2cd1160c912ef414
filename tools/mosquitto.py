# A throwaway mosquitto for the tools that measure the node on a broker (tools/fleet.py, the
# MQTT row of `make bench`): Debian's mosquitto on a free 127.0.0.1 port, anonymous clients,
# nothing kept on disk, its log in its folder. stop() and start() again keep the port, which is
# how a broker restart is measured. A missing mosquitto is an error saying what to install.
import getpass
import os
import shutil
import socket
import subprocess
import time

from harness import free_port  # tools/ is on the path of whoever imports this

MISSING = "mosquitto is not installed (Debian: apt-get install mosquitto)"


class BrokerError(Exception):
    pass


def find():
    return shutil.which("mosquitto") or (os.path.exists("/usr/sbin/mosquitto") and "/usr/sbin/mosquitto") or None


class Broker:
    def __init__(self, folder, port=None):
        self.binary = find()
        if not self.binary:
            raise BrokerError(MISSING)
        self.port = port or free_port()
        self.proc = None
        self.conf = os.path.join(folder, "mosquitto.conf")
        self.log = os.path.join(folder, "mosquitto.log")
        with open(self.conf, "w") as f:
            # run as root, mosquitto would switch to its own user, who cannot read this folder;
            # many clients from one address: no connection rate limit applies on a listener
            f.write("user %s\npersistence false\nallow_anonymous true\nlistener %d 127.0.0.1\n"
                    % (getpass.getuser(), self.port))

    # Start it and wait (at most timeout seconds) until it accepts connections.
    def start(self, timeout=10.0):
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen([self.binary, "-c", self.conf], stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BrokerError("mosquitto exited (%s): %s" % (self.proc.returncode, self.tail()))
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                if time.monotonic() > end:
                    self.stop()
                    raise BrokerError("mosquitto did not listen on port %d within %.0f s" % (self.port, timeout))
                time.sleep(0.05)

    def stop(self):
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.proc = None

    def tail(self, n=5):
        try:
            with open(self.log) as f:
                return " | ".join(f.read().splitlines()[-n:])
        except OSError:
            return ""
