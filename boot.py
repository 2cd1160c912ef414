# Runs first after every reset. Before anything else is imported, an update over Wi-Fi is seen
# to (firmware/update.py writes it down, this file carries it out): a committed one is swapped in
# with renames, the files it replaces kept in .previous/; a new firmware on trial has its boots
# counted in .trial, which the node removes once it serves (board.py); on the fourth boot without
# that, the previous version is put back. Only built-in modules here, so a broken firmware cannot
# stop it. Then the relays go to their safe (off) level.
import os

import machine

TRIAL = ".trial"  # "swap": a committed update to install; else the boots counted on trial
NEW = ".update"  # the staged files
OLD = ".previous"  # the files the update replaced, and its journal (what it added, replaced, removed)
NOTE = ".rolledback"  # why the previous version is back: the node puts it in its state message
BOOTS = 3  # boots a new firmware has to reach serving
TRIAL_WDT_MS = 60000  # a boot on trial that hangs before the node's own watchdog runs resets too


# Sees to an update (see above); True while a new firmware is on trial. Its helpers live inside it,
# so that nothing of them stays in the globals that boot.py and main.py share.
def _update():
    def exists(p):
        try:
            os.stat(p)
            return True
        except OSError:
            return False

    def move(a, b):
        i = b.find("/")
        while i > 0:
            try:
                os.mkdir(b[:i])
            except OSError:
                pass
            i = b.find("/", i + 1)
        if exists(b):
            os.remove(b)
        os.rename(a, b)

    def write(p, text):
        with open(p + ".tmp", "w") as f:
            f.write(text)
        os.rename(p + ".tmp", p)

    def journal():
        import json

        with open(OLD + "/.journal") as f:
            return json.load(f)

    def remove_tree(p):
        try:
            if os.stat(p)[0] & 0x4000:
                for e in os.listdir(p):
                    remove_tree(p + "/" + e)
                os.rmdir(p)
            else:
                os.remove(p)
        except OSError:
            pass

    # Swap the staged files in. Each step can be done again: a reset half-way through just runs it
    # again at the next boot, and it goes on where it stopped.
    def install(j):
        for name in j["add"] + j["replace"]:
            if exists(NEW + "/" + name):
                if name in j["replace"] and exists(name) and not exists(OLD + "/" + name):
                    move(name, OLD + "/" + name)
                move(NEW + "/" + name, name)
        for name in j["remove"]:
            if exists(name) and not exists(OLD + "/" + name):
                move(name, OLD + "/" + name)
        remove_tree(NEW)

    # Put the previous version back; can be done again too.
    def restore(j):
        for name in j["add"]:
            if exists(name):
                os.remove(name)
        for name in j["replace"] + j["remove"]:
            if exists(OLD + "/" + name):
                move(OLD + "/" + name, name)

    def step():
        try:
            with open(TRIAL) as f:
                state = f.read()
        except OSError:
            return False
        if state == "swap":
            install(journal())
            write(TRIAL, "1")
            print("update: new firmware installed; boot 1 of %d on trial" % BOOTS)
            return True
        boots = int(state) + 1
        if machine.reset_cause() == machine.SOFT_RESET:
            boots -= 1  # a soft reset (mpremote) is no boot of the firmware
        write(TRIAL, str(boots))
        if boots <= BOOTS:
            print("update: boot %d of %d on trial" % (boots, BOOTS))
            return True
        restore(journal())
        why = "the new firmware did not reach serving within %d boots: the previous version was restored" % BOOTS
        write(NOTE, why)
        os.remove(TRIAL)
        print("update: " + why)
        return False

    return step()


try:
    trial = _update()
except Exception as e:  # a half-written journal, a full flash: boot on, with what is there
    print("update: %r" % e)
    trial = False
    del e
if trial:
    machine.WDT(timeout=TRIAL_WDT_MS)
try:
    from firmware import board

    board.safe_pins()
except Exception:
    if trial:  # counted: the next boot is the next try, or the rollback
        print("update: the new firmware failed to import; resetting")
        machine.reset()
    raise
del _update, trial
