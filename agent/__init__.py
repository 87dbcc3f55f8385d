"""Device drivers: `facmon agent` polls inverters directly on the site server and publishes the contract,
one device connection each (retained online, last will offline), as `facmon probe` does for uplinks.

    registers.py  register maps as data (maps/*.yaml: Deye/Sunsynk hybrid, SunSpec) → metrics (pure)
    modbus.py     Modbus TCP and RTU through pymodbus: blocks of registers from a device
    solarman.py   Solarman V5 Wi-Fi loggers through pysolarmanv5: the same registers, behind the logger
    pi30.py       Voltronic/Inverex PI30 over serial: our own small codec (QPIGS, QMOD), see its docstring
    poll.py       a round per device → a Reading, or an `offline` status when the device fails

Errors:  AgentError ─┬─ RegisterMapError  (a map file is wrong: file:line and what to fix)
                     └─ DeviceError       (the device timed out, answered garbage or is gone: the
                                            device is reported offline and polled again next round)
"""


class AgentError(RuntimeError):
    """Base of the agent's errors."""


class RegisterMapError(AgentError):
    """A register map file is invalid; one `file:line: key: problem` line per problem."""


class DeviceError(AgentError):
    """A device did not give a usable answer: timeout, garbage, refused connection, gone. The message
    says which device, what happened and what to check."""
