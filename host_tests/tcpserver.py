# A TCP server on 127.0.0.1 for the peers and brokers that misbehave in tests: it accepts in
# a thread of its own and hands each connection to answer(conn), which a subclass makes stall,
# lie or send garbage (the default: say nothing). close() stops it and closes every socket.
import socket
import threading


class TcpServer:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)  # the accept loop looks at self.running this often
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns = []
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            self.conns.append(c)
            try:
                self.answer(c)
            except OSError:
                pass

    def answer(self, conn):
        pass

    def close(self):
        self.running = False
        self.thread.join(2)
        for c in self.conns + [self.sock]:
            c.close()
