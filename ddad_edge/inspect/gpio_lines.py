"""Output lines: the smallest interface a GPIO driver needs (`write(high)`), and its implementations.

`JetsonLine` (Jetson.GPIO, BOARD/BCM/CVM/TEGRA_SOC pin numbering), `GpiodLine` (libgpiod's Python
bindings, v1 and v2 APIs), and `SimLine` (records every level change with its monotonic time, and can
mirror them to a JSON-lines file). The pulse scheduler and the READY logic sit above this interface and
are the same for every driver. Hardware libraries are imported when a line is opened, with one-line
errors.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import threading
import time
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Protocol

from ddad_edge.errors import DdadError, missing_package

CONSUMER = "ddad-edge"


class GpioLine(Protocol):
    """One output line, driven by physical level."""

    name: str

    def write(self, high: bool) -> None: ...

    def close(self) -> None: ...


class GpioKind(str, Enum):
    NONE = "none"
    SIM = "sim"
    JETSON = "jetson"
    GPIOD = "gpiod"


JETSON_MODES = ("BOARD", "BCM", "CVM", "TEGRA_SOC")


@dataclass(frozen=True)
class GpioSpec:
    """A `--gpio` value: `none`, `sim`, `jetson:BOARD:18` (mode and pin), `gpiod:/dev/gpiochip0:17`."""

    kind: GpioKind
    chip: str = ""  # Jetson numbering mode, or gpiod chip path
    pin: int | str = 0

    @classmethod
    def parse(cls, text: str, option: str = "--gpio") -> "GpioSpec":
        """The spec of `text`; `option` names the command-line option in the error."""
        if text in ("none", "sim"):
            return cls(GpioKind(text))
        kind, _, rest = text.partition(":")
        chip, _, pin = rest.rpartition(":")
        usage = "use none, sim, jetson:BOARD:18 or gpiod:/dev/gpiochip0:17"
        if kind not in ("jetson", "gpiod") or not chip or not pin:
            raise DdadError(f"{option} {text!r} is not a GPIO line: {usage}")
        if kind == "jetson":
            if chip.upper() not in JETSON_MODES:
                raise DdadError(f"{option} {text!r}: Jetson pin numbering must be one of {', '.join(JETSON_MODES)}")
            # BOARD/BCM pins are numbers; CVM and TEGRA_SOC pins are names like GPIO09 or SOC_GPIO54.
            return cls(GpioKind.JETSON, chip.upper(), int(pin) if pin.isdigit() else pin)
        if not pin.isdigit():
            raise DdadError(f"{option} {text!r}: the gpiod line offset must be a number")
        return cls(GpioKind.GPIOD, chip, int(pin))

    def __str__(self) -> str:
        if self.kind in (GpioKind.NONE, GpioKind.SIM):
            return self.kind.value
        return f"{self.kind.value}:{self.chip}:{self.pin}"


# BCM (Raspberry Pi) number -> physical pin of the 40-pin header. Jetson.GPIO numbers the Jetson header the
# same way on every developer kit, so BOARD 18 and BCM 24 are one pin.
_BCM_TO_BOARD = {2: 3, 3: 5, 4: 7, 14: 8, 15: 10, 17: 11, 18: 12, 27: 13, 22: 15, 23: 16, 24: 18, 10: 19,
                 9: 21, 25: 22, 11: 23, 8: 24, 7: 26, 0: 27, 1: 28, 5: 29, 6: 31, 12: 32, 13: 33, 19: 35,
                 16: 36, 26: 37, 20: 38, 21: 40}


def chip_path(chip: str) -> str:
    """A gpiod chip as a path: '0' and 'gpiochip0' become '/dev/gpiochip0'. libgpiod v1 took a number or
    name; v2's request_lines takes the chip's path, so a bare name would be opened as a relative file."""
    if chip.isdigit():
        chip = f"gpiochip{chip}"
    return chip if "/" in chip else f"/dev/{chip}"


def _line_identity(spec: GpioSpec) -> tuple | None:
    """What `spec` drives, comparable between two specs: the header pin for Jetson BOARD/BCM numbers, the
    upper-case signal name for CVM/TEGRA_SOC, the resolved chip path and offset for gpiod; None for sim
    and none (each simulated line is its own)."""
    if spec.kind is GpioKind.JETSON:
        if spec.chip == "BOARD" and isinstance(spec.pin, int):
            return ("header pin", spec.pin)
        if spec.chip == "BCM" and isinstance(spec.pin, int) and spec.pin in _BCM_TO_BOARD:
            return ("header pin", _BCM_TO_BOARD[spec.pin])
        return (spec.chip, str(spec.pin).upper())
    if spec.kind is GpioKind.GPIOD:
        return ("gpiod", os.path.realpath(chip_path(spec.chip)), spec.pin)
    return None


def check_distinct_lines(reject: GpioSpec, ready: GpioSpec) -> None:
    """Refuse, in one line, a READY line that is the reject line: READY high would hold the ejector on.

    Checked before any line is opened. A Jetson pin and a gpiod line on the same pin are not recognised
    here (that needs the board's tables); the second to open then finds the pin busy.
    """
    identity = _line_identity(reject)
    if identity is not None and identity == _line_identity(ready):
        same = f" (header pin {identity[1]})" if identity[0] == "header pin" else ""
        raise DdadError(f"--gpio {reject} and --ready-gpio {ready} are the same line{same}: READY would hold "
                        "the ejector on while the loop is healthy; give READY a pin of its own")


def check_sim_log(path: Path) -> None:
    """Refuse, in one line, a simulated-GPIO log path that cannot be a file (checked before a run opens
    anything)."""
    if path.exists() and not path.is_file():
        raise DdadError(f"the simulated GPIO log {path} exists and is not a file (a folder?): move it away "
                        "or choose another --out")


class SimLine:
    """A simulated line: records (monotonic time, high) for every write; optionally mirrors to a file."""

    def __init__(self, name: str, log_path: Path | None = None) -> None:
        self.name = name
        self.changes: list[tuple[float, bool]] = []
        self._lock = threading.Lock()
        self._log = None
        if log_path:
            try:
                self._log = open(log_path, "a", buffering=1)
            except OSError as exc:
                raise DdadError(f"cannot write the simulated GPIO log {log_path}: {exc.strerror or exc}") from None

    def write(self, high: bool) -> None:
        t = time.monotonic()
        with self._lock:
            self.changes.append((t, high))
            if self._log:
                self._log.write(json.dumps({"line": self.name, "t": t, "high": high}) + "\n")

    @property
    def level(self) -> bool | None:
        """The level last written, None before the first write."""
        with self._lock:
            return self.changes[-1][1] if self.changes else None

    def intervals(self, high: bool = True) -> list[tuple[float, float]]:
        """(start, end) monotonic seconds of every span spent at `high`; an open span ends at +inf."""
        with self._lock:
            changes = list(self.changes)
        spans, start = [], None
        for t, level in changes:
            if level == high and start is None:
                start = t
            elif level != high and start is not None:
                spans.append((start, t))
                start = None
        if start is not None:
            spans.append((start, float("inf")))
        return spans

    def close(self) -> None:
        if self._log:
            self._log.close()
            self._log = None


def line_error(exc: OSError, what: str, library: str) -> DdadError:
    """One line for an OSError while opening an output line (`what`: "BOARD pin 18", "line 17 of
    /dev/gpiochip0"), with the fix its errno points to."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.EACCES, errno.EPERM):
        fix = ("this user may not open /dev/gpiochip*: add it to the gpio group (usermod -aG gpio USER, or "
               "SupplementaryGroups=gpio in the systemd unit) and give the chips to that group "
               "(device-files/99-ddad-edge-gpio.rules)")
    elif exc.errno == errno.EBUSY:
        fix = ("another process holds it (gpioinfo names the consumer of each line in use): stop that "
               "process, or choose another pin")
    elif exc.errno == errno.ENOENT:
        fix = "no such GPIO chip: gpiodetect lists the chips"
    elif exc.errno == errno.EINVAL:
        fix = "no such line on that chip: gpioinfo lists the lines and their offsets"
    else:
        fix = "check the pin with gpioinfo and that this user may open /dev/gpiochip*"
    return DdadError(f"{library} cannot open {what} as an output: {reason}; {fix}")


class JetsonLine:
    """A pin of the Jetson 40-pin header through Jetson.GPIO (numbering mode as given: BOARD, BCM, ...)."""

    def __init__(self, name: str, mode: str, pin: int | str, initial_high: bool) -> None:
        what = f"{mode} pin {pin}"
        try:
            gpio = importlib.import_module("Jetson.GPIO")
        except ImportError:
            raise missing_package("Jetson.GPIO", "--gpio jetson:...", "pip install Jetson.GPIO "
                                  "(and add the user to the gpio group)") from None
        except OSError as exc:  # some versions open /dev/gpiochip* as they load
            raise line_error(exc, what, "Jetson.GPIO") from None
        except Exception as exc:  # Jetson.GPIO raises at import on a machine that is not a Jetson
            first = str(exc).splitlines()[0] if str(exc) else repr(exc)
            if "permission" in first.lower():  # sysfs versions: RuntimeError("... does not have permissions")
                raise line_error(PermissionError(errno.EACCES, first), what, "Jetson.GPIO") from None
            raise DdadError(f"Jetson.GPIO cannot run here: {first}; use --gpio gpiod:... or --gpio sim") from None
        self.name = name
        self._gpio = gpio
        self._pin = pin
        wanted = getattr(gpio, mode)
        current = gpio.getmode()
        if current is not None and current != wanted:
            raise DdadError(f"Jetson.GPIO is already in another numbering mode than {mode}; "
                            "use the same mode for every --gpio line")
        try:
            if current is None:
                gpio.setmode(wanted)
            # Warnings stay on: with them off Jetson.GPIO also skips its pinmux check, the one warning that
            # says a header pin is not muxed as a GPIO (gpio.py: check_pinmux only if _gpio_warnings).
            gpio.setup(pin, gpio.OUT, initial=gpio.HIGH if initial_high else gpio.LOW)
        except (ValueError, RuntimeError) as exc:
            raise DdadError(f"Jetson.GPIO cannot use {what} as an output: {exc}") from None
        except OSError as exc:  # GPIOError of the cdev backend is an OSError: EACCES, EBUSY, ...
            raise line_error(exc, what, "Jetson.GPIO") from None
        except Exception as exc:  # noqa: BLE001 - the cdev backend raises a bare Exception for a chip label
            # it cannot find ("tegra234-gpio: No such gpio device registered", gpio_cdev.chip_open_by_label)
            raise DdadError(f"Jetson.GPIO cannot open the GPIO chip of {what}: {exc}; this Jetson.GPIO does "
                            "not know this board's chips (update Jetson.GPIO, or use --gpio gpiod:...)") from None

    def write(self, high: bool) -> None:
        self._gpio.output(self._pin, self._gpio.HIGH if high else self._gpio.LOW)

    def close(self) -> None:
        self._gpio.cleanup(self._pin)


class GpiodLine:
    """A line of a GPIO character device through libgpiod's Python bindings (v2 API, or v1)."""

    def __init__(self, name: str, chip: str, offset: int, initial_high: bool) -> None:
        try:
            gpiod = importlib.import_module("gpiod")
        except ImportError:
            raise missing_package("gpiod", "--gpio gpiod:...",
                                  "pip install gpiod (libgpiod v2 bindings) or apt install python3-libgpiod") from None
        self.name = name
        self._offset = offset
        try:
            if hasattr(gpiod, "request_lines"):  # v2
                line = importlib.import_module("gpiod.line")
                self._active, self._inactive = line.Value.ACTIVE, line.Value.INACTIVE
                settings = gpiod.LineSettings(direction=line.Direction.OUTPUT,
                                              output_value=self._active if initial_high else self._inactive)
                self._request = gpiod.request_lines(chip_path(chip), consumer=CONSUMER, config={offset: settings})
                self._v2 = True
            elif hasattr(gpiod, "Chip") and hasattr(gpiod, "LINE_REQ_DIR_OUT"):  # v1
                self._chip = gpiod.Chip(chip)
                self._line = self._chip.get_line(offset)
                self._line.request(consumer=CONSUMER, type=gpiod.LINE_REQ_DIR_OUT,
                                   default_vals=[int(initial_high)])
                self._v2 = False
            else:
                raise DdadError("the installed 'gpiod' module is neither libgpiod's v2 nor v1 Python binding; "
                                "pip install gpiod (v2) or apt install python3-libgpiod (v1)")
        except OSError as exc:
            raise line_error(exc, f"line {offset} of {chip}", "libgpiod") from None

    def write(self, high: bool) -> None:
        if self._v2:
            self._request.set_value(self._offset, self._active if high else self._inactive)
        else:
            self._line.set_value(int(high))

    def close(self) -> None:
        if self._v2:
            self._request.release()
        else:
            self._line.release()
            self._chip.close()


def open_line(spec: GpioSpec, name: str, initial_high: bool, sim_log: Path | None = None) -> GpioLine:
    """Open the output line of `spec` at its initial (safe) level."""
    if spec.kind is GpioKind.JETSON:
        return JetsonLine(name, spec.chip, spec.pin, initial_high)
    if spec.kind is GpioKind.GPIOD:
        return GpiodLine(name, spec.chip, int(spec.pin), initial_high)
    if spec.kind is GpioKind.SIM:
        line = SimLine(name, sim_log)
        line.write(initial_high)
        return line
    raise DdadError(f"no output line for --gpio {spec.kind.value}")
