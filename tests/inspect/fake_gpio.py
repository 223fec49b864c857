"""Fakes of the GPIO libraries that are absent here: Jetson.GPIO and libgpiod's v1 and v2 Python bindings.

They record what the drivers ask of them, and can refuse a line the way the real libraries do: Jetson.GPIO's
cdev backend raises `GPIOError` (an IOError, that is an OSError) with the errno of the failed ioctl or open;
libgpiod raises OSError with the errno.
"""

from __future__ import annotations

import os
import sys
import types


class FakeGPIOError(IOError):
    """Stands in for Jetson.GPIO.gpio_cdev.GPIOError (a subclass of IOError)."""


class FakeJetsonGPIO(types.ModuleType):
    """Stands in for Jetson.GPIO: records mode, setup and output calls. `refuse`: an errno that setup raises
    (as GPIOError), as the cdev backend does for EACCES (no permission) and EBUSY (held by another process)."""

    BOARD, BCM, CVM, TEGRA_SOC = "BOARD", "BCM", "CVM", "TEGRA_SOC"
    OUT, HIGH, LOW = "out", 1, 0

    def __init__(self, refuse: int | None = None, missing_chip: str | None = None):
        super().__init__("Jetson.GPIO")
        self.mode, self.calls, self.refuse, self.warnings = None, [], refuse, True
        self.missing_chip = missing_chip  # a chip label the cdev backend cannot find

    def getmode(self):
        return self.mode

    def setmode(self, mode):
        self.mode = mode

    def setwarnings(self, flag):
        self.warnings = bool(flag)

    def setup(self, pin, direction, initial):
        if self.missing_chip is not None:  # gpio_cdev.chip_open_by_label raises a bare Exception
            raise Exception(f"{self.missing_chip}: No such gpio device registered")
        if self.refuse is not None:
            raise FakeGPIOError(self.refuse, "Opening output line handle: " + os.strerror(self.refuse))
        self.calls.append(("setup", pin, direction, initial))
        if self.warnings:  # Jetson.GPIO checks the pinmux only with warnings on
            self.calls.append(("pinmux_check", pin))

    def output(self, pin, value):
        self.calls.append(("output", pin, value))

    def cleanup(self, pin):
        self.calls.append(("cleanup", pin))


def install_fake_jetson_gpio(monkeypatch, refuse: int | None = None,
                             missing_chip: str | None = None) -> FakeJetsonGPIO:
    """Put a FakeJetsonGPIO in sys.modules as Jetson.GPIO (for this test only) and return it."""
    fake = FakeJetsonGPIO(refuse, missing_chip)
    package = types.ModuleType("Jetson")
    package.GPIO = fake
    monkeypatch.setitem(sys.modules, "Jetson", package)
    monkeypatch.setitem(sys.modules, "Jetson.GPIO", fake)
    return fake


def make_fake_gpiod_v2(refuse: int | None = None):
    """Stands in for libgpiod's v2 Python binding (gpiod.request_lines, gpiod.line.Value); `refuse`: an
    errno that request_lines raises as OSError."""
    gpiod = types.ModuleType("gpiod")
    line = types.ModuleType("gpiod.line")
    line.Direction = types.SimpleNamespace(OUTPUT="output")
    line.Value = types.SimpleNamespace(ACTIVE="active", INACTIVE="inactive")
    gpiod.line = line
    gpiod.requests = []

    class FakeRequest:
        def __init__(self, chip, consumer, config):
            self.chip, self.consumer, self.config, self.values, self.released = chip, consumer, config, [], False

        def set_value(self, offset, value):
            self.values.append((offset, value))

        def release(self):
            self.released = True

    gpiod.LineSettings = lambda direction, output_value: {"direction": direction, "output_value": output_value}

    def request_lines(chip, consumer, config):
        if not chip.startswith("/dev/"):  # v2 opens the path it is given: 'gpiochip0' is no file here
            raise FileNotFoundError(2, os.strerror(2), chip)
        if refuse is not None:
            raise OSError(refuse, os.strerror(refuse))
        gpiod.requests.append(FakeRequest(chip, consumer, config))
        return gpiod.requests[-1]

    gpiod.request_lines = request_lines
    return gpiod, line


def make_fake_gpiod_v1(refuse: int | None = None):
    """Stands in for libgpiod's v1 Python binding (gpiod.Chip, line.request, LINE_REQ_DIR_OUT); `refuse`:
    an errno that line.request raises as OSError."""
    gpiod = types.ModuleType("gpiod")
    gpiod.LINE_REQ_DIR_OUT = 3
    gpiod.lines = []

    class FakeLine:
        def __init__(self, offset):
            self.offset, self.values, self.request_args, self.released = offset, [], None, False

        def request(self, consumer, type, default_vals):
            if refuse is not None:
                raise OSError(refuse, os.strerror(refuse))
            self.request_args = (consumer, type, default_vals)

        def set_value(self, value):
            self.values.append(value)

        def release(self):
            self.released = True

    class Chip:
        def __init__(self, path):
            self.path, self.closed = path, False

        def get_line(self, offset):
            gpiod.lines.append(FakeLine(offset))
            return gpiod.lines[-1]

        def close(self):
            self.closed = True

    gpiod.Chip = Chip
    return gpiod


class _FakeFailingDriver:
    """A GPIO line whose driver misbehaves from write `from_write` on (counting from 1): `attempts` counts
    every write, `writes` holds the levels of those that completed, `closed` whether close was called."""

    def __init__(self, name: str, from_write: int):
        self.name, self.from_write = name, from_write
        self.writes: list[bool] = []
        self.attempts = 0
        self.closed = False

    def write(self, high: bool) -> None:
        self.attempts += 1
        if self.attempts >= self.from_write:
            self.misbehave()
        self.writes.append(high)

    def misbehave(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.closed = True


class FakeBrokenLine(_FakeFailingDriver):
    """Stands in for a GPIO driver whose chip fails mid-run (a cable pulled, a chip reset): from write
    `fail_from` on every write raises OSError EIO, as libgpiod and Jetson.GPIO's cdev backend raise a
    failed ioctl."""

    def __init__(self, name: str, fail_from: int):
        super().__init__(name, fail_from)

    def misbehave(self) -> None:
        raise OSError(5, "Input/output error")


class FakeHungLine(_FakeFailingDriver):
    """Stands in for a GPIO driver stuck in a call that never returns (a wedged ioctl): write `hang_from`
    on blocks until `release` is set; `close` would block the same way."""

    def __init__(self, name: str, hang_from: int):
        import threading

        super().__init__(name, hang_from)
        self.release = threading.Event()

    def misbehave(self) -> None:
        self.release.wait()

    def close(self) -> None:
        super().close()
        self.release.wait()
