"""Device drivers: `facmon agent` polls inverters directly on the site server and publishes the contract,
one device connection each (retained online, last will offline), as `facmon probe` does for uplinks.

    registers.py  register maps as data (maps/*.yaml: Deye/Sunsynk hybrid, SunSpec) → metrics (pure)
    sunspec.py    a SunSpec device's model chain, walked from its "SunS" marker; a map placed on it (pure)
    modbus.py     Modbus TCP and RTU through pymodbus: blocks of registers from a device
    solarman.py   Solarman V5 Wi-Fi loggers through pysolarmanv5: the same registers, behind the logger
    pi30.py       Voltronic/Inverex PI30 over serial: our own small codec (QPIGS, QMOD), see its docstring
    poll.py       a round per device → a Reading, or an `offline` status when the device fails

Errors:  AgentError ─┬─ RegisterMapError  (a map file is wrong: file:line and what to fix)
                     └─ DeviceError       (the device timed out, answered garbage or is gone: the
                          │                 device is reported offline and polled again next round)
                          ├─ DeviceRefused    (a Modbus exception answer: no such register there)
                          └─ SunSpecMismatch  (its SunSpec model chain is garbage or lacks what the
                                               map reads)
"""


class AgentError(RuntimeError):
    """Base of the agent's errors."""


class RegisterMapError(AgentError):
    """A register map file is invalid; one `file:line: key: problem` line per problem."""


class DeviceError(AgentError):
    """A device did not give a usable answer: timeout, garbage, refused connection, gone. The message
    says which device, what happened and what to check."""


class DeviceRefused(DeviceError):
    """The device answered, with a Modbus exception response (e.g. illegal data address): the connection
    is fine, the registers asked for are not there. The SunSpec walk moves on to the next base address
    on this, where any other DeviceError (timeout, connection gone) ends it at once."""


class SunSpecMismatch(DeviceError):
    """The device's SunSpec model chain is garbage (no end, lengths past the last address) or lacks a
    model the map reads. The message names the models the device has; the driver adds which device."""
