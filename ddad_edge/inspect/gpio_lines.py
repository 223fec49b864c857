"""Output lines: the smallest interface a GPIO driver needs (`write(high)`), and its implementations.

`JetsonLine` (Jetson.GPIO, BOARD/BCM/CVM/TEGRA_SOC pin numbering), `GpiodLine` (libgpiod's Python
bindings, v1 and v2 APIs), and `SimLine` (records every level change with its monotonic time, and can
mirror them to a JSON-lines file). The pulse scheduler and the READY logic sit above this interface and
are the same for every driver. Hardware libraries are imported when a line is opened, with one-line
errors.
"""

from __future__ import annotations

import importlib
import json
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
    def parse(cls, text: str) -> "GpioSpec":
        if text in ("none", "sim"):
            return cls(GpioKind(text))
        kind, _, rest = text.partition(":")
        chip, _, pin = rest.rpartition(":")
        usage = "use none, sim, jetson:BOARD:18 or gpiod:/dev/gpiochip0:17"
        if kind not in ("jetson", "gpiod") or not chip or not pin:
            raise DdadError(f"--gpio {text!r} is not a GPIO line: {usage}")
        if kind == "jetson":
            if chip.upper() not in JETSON_MODES:
                raise DdadError(f"--gpio {text!r}: Jetson pin numbering must be one of {', '.join(JETSON_MODES)}")
            # BOARD/BCM pins are numbers; CVM and TEGRA_SOC pins are names like GPIO09 or SOC_GPIO54.
            return cls(GpioKind.JETSON, chip.upper(), int(pin) if pin.isdigit() else pin)
        if not pin.isdigit():
            raise DdadError(f"--gpio {text!r}: the gpiod line offset must be a number")
        return cls(GpioKind.GPIOD, chip, int(pin))


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


class JetsonLine:
    """A pin of the Jetson 40-pin header through Jetson.GPIO (numbering mode as given: BOARD, BCM, ...)."""

    def __init__(self, name: str, mode: str, pin: int | str, initial_high: bool) -> None:
        try:
            gpio = importlib.import_module("Jetson.GPIO")
        except ImportError:
            raise missing_package("Jetson.GPIO", "--gpio jetson:...", "pip install Jetson.GPIO "
                                  "(and add the user to the gpio group)") from None
        except Exception as exc:  # Jetson.GPIO raises at import on a machine that is not a Jetson
            raise DdadError(f"Jetson.GPIO cannot run here: {str(exc).splitlines()[0] if str(exc) else exc!r}; "
                            "use --gpio gpiod:... or --gpio sim") from None
        self.name = name
        self._gpio = gpio
        self._pin = pin
        wanted = getattr(gpio, mode)
        current = gpio.getmode()
        if current is None:
            gpio.setmode(wanted)
        elif current != wanted:
            raise DdadError(f"Jetson.GPIO is already in another numbering mode than {mode}; "
                            "use the same mode for every --gpio line")
        gpio.setwarnings(False)  # a pin left configured by a previous run is ours to take over
        try:
            gpio.setup(pin, gpio.OUT, initial=gpio.HIGH if initial_high else gpio.LOW)
        except (ValueError, RuntimeError) as exc:
            raise DdadError(f"Jetson.GPIO cannot use {mode} pin {pin} as an output: {exc}") from None

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
                self._request = gpiod.request_lines(chip, consumer=CONSUMER, config={offset: settings})
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
            raise DdadError(f"cannot request line {offset} of {chip} as an output: {exc.strerror or exc} "
                            "(is the chip path right, is the line free, may this user open it?)") from None

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
