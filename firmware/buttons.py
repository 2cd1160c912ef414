# Buttons and switches on the node: each input pin's interrupt marks the pin and sets one
# flag (compat.irq_flag); a task wakes on the flag (or when firmware/inputs.py has a
# deadline), reads the marked pins and hands the resulting commands to node.apply with cause
# "button". Pins come from make_input(gpio, pull, handler): on the board machine.Pin(gpio,
# Pin.IN, pull) with irq(handler, IRQ_RISING | IRQ_FALLING); on the host a fake pin whose
# level the simulator sets before it calls handler(pin).
import asyncio

from .compat import irq_flag, ticks_add, ticks_ms, wait_for_ms
from .inputs import Inputs
from .node import Listener

BUTTON = "button"


class Buttons(Listener):

    def __init__(self, node, specs, make_input):
        self.node = node
        self.inputs = Inputs(specs)
        self.hit = bytearray(len(specs))  # set by the interrupt handlers, cleared by the task
        self.flag = irq_flag()
        self.pins = []  # until every pin is made (an interrupt meanwhile is taken at start)
        irq = self._irq  # one bound method for every pin: a closure each would cost more heap
        self.pins = [make_input(s["pin"], s["pull"], irq) for s in specs]
        self.task = None

    # The interrupt handler of every input: marks the pin's input and wakes the task.
    def _irq(self, pin):
        try:
            self.hit[self.pins.index(pin)] = 1
        except ValueError:
            return
        self.flag.set()

    # Feed the marked inputs' levels; apply what comes out. Returns the commands applied.
    def poll(self, now):
        for i in range(len(self.hit)):
            if self.hit[i]:
                self.hit[i] = 0
                self.inputs.edge(i, self.pins[i].value(), now)
        cmds = self.inputs.tick(now)
        for cmd in cmds:
            err = self.node.apply(cmd, BUTTON)
            if err:
                self.node.log("button: %s" % err[1])
        return cmds

    async def _run(self):
        while True:
            wait = self.inputs.next_ms(ticks_ms())
            try:
                if wait is None:
                    await self.flag.wait()  # pyright: ignore[reportGeneralTypeIssues]
                else:
                    await wait_for_ms(self.flag.wait(), max(wait, 1))
            except asyncio.TimeoutError:
                pass
            self.flag.clear()
            try:
                self.poll(ticks_ms())
            except Exception as e:  # a bug here must not stop the buttons for good
                self.node.log("button: %r" % e)

    # The levels at start are where the inputs begin, taken as settled (a button held then is
    # not a press, a wall switch's relay follows it at once); every edge after this counts.
    def start(self):
        now = ticks_ms()
        for i, p in enumerate(self.pins):
            self.inputs.edge(i, p.value(), ticks_add(now, -1000))  # debounce_ms is at most 1000
        self.poll(now)
        self.task = asyncio.create_task(self._run())

    def stop(self):
        if self.task is not None:
            self.task.cancel()
            self.task = None


# Build the buttons for the validated "inputs" section; make_input as above, by default the
# board's or host's (node.env["make_input"]). None where there is none to make them with.
def attach(node, specs, make_input=None):
    make_input = make_input or node.env.get("make_input")
    if make_input is None:
        node.log("inputs: no input pins on this runtime")
        return None
    b = Buttons(node, specs, make_input)
    node.listen(b)
    return b
