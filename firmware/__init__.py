# relaynode firmware: the modules that go onto the board.
VERSION = "0.1.0"
