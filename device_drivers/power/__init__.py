"""Power: the rig cuts the DUT's power and gives it back.

Backends: a relay on the Pi's supply, switched with gpiozero on the rig host's pins (or a helper
Pi's, through pigpio); on a virtual Pi, the board's processes stop and start (rig/virtual_pi.py).
"""

from .relay import PowerSwitch, RelaySwitch
from .switch import Power

__all__ = ["Power", "PowerSwitch", "RelaySwitch"]
