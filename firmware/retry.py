# Retry timing for connections the node keeps up on its own (links, and any integration that
# talks to a peer): waits that double up to a cap, with jitter, so that nodes which lost a
# peer together do not all come back at the same moment.
import os


# ms with +-25% jitter.
def jitter(ms):
    return ms * (192 + os.urandom(1)[0] % 128) // 256


class Backoff:
    def __init__(self, first, cap):
        self.first = first
        self.cap = cap
        self.delay = first

    # The next wait (jittered); the one after it is twice as long, up to the cap.
    def next(self):
        wait = jitter(self.delay)
        self.delay = min(self.delay * 2, self.cap)
        return wait

    def reset(self):
        self.delay = self.first
