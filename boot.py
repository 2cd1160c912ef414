# Runs first after every reset: relays to their safe (off) level before anything else.
from firmware import board

board.safe_pins()
