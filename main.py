# Runs after boot.py: Wi-Fi, then the relay node.
from firmware import board

board.main()
