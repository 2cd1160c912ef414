# Runs after boot.py: Wi-Fi, then the relay node. A new firmware on trial after an update that
# fails to start resets at once, so that boot.py counts the boot (and rolls back after three).
try:
    from firmware import board

    board.main()
except Exception as e:
    import os

    if ".trial" not in os.listdir():
        raise e
    import sys
    import machine

    sys.print_exception(e)  # pyright: ignore[reportAttributeAccessIssue]
    print("update: the new firmware failed to start; resetting")
    machine.reset()
