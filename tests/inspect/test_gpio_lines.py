"""Opening output lines: a pin another process holds or this user may not open, and READY given the reject
line itself, are one line each (against fakes of Jetson.GPIO and libgpiod, which are absent here)."""

from __future__ import annotations

import errno
import sys

import pytest

from ddad_edge.errors import DdadError
from ddad_edge.inspect.gpio_lines import GpiodLine, GpioSpec, JetsonLine
from ddad_edge.inspect.reject import RejectTiming, open_reject_output
from tests.inspect.fake_gpio import install_fake_jetson_gpio, make_fake_gpiod_v1, make_fake_gpiod_v2

FIXES = {errno.EACCES: "add it to the gpio group", errno.EBUSY: "another process holds it"}


@pytest.mark.parametrize("code", [errno.EACCES, errno.EBUSY])
def test_a_jetson_pin_that_is_busy_or_forbidden_is_one_line(monkeypatch, code):
    install_fake_jetson_gpio(monkeypatch, refuse=code)
    with pytest.raises(DdadError) as info:
        JetsonLine("reject", "BOARD", 18, initial_high=False)
    message = str(info.value)
    assert "BOARD pin 18" in message and FIXES[code] in message and "\n" not in message


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("code", [errno.EACCES, errno.EBUSY])
def test_a_gpiod_line_that_is_busy_or_forbidden_names_the_fix(monkeypatch, version, code):
    if version == "v2":
        gpiod, line = make_fake_gpiod_v2(refuse=code)
        monkeypatch.setitem(sys.modules, "gpiod.line", line)
    else:
        gpiod = make_fake_gpiod_v1(refuse=code)
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    with pytest.raises(DdadError) as info:
        GpiodLine("reject", "/dev/gpiochip0", 17, initial_high=False)
    message = str(info.value)
    assert "line 17 of /dev/gpiochip0" in message and FIXES[code] in message and "\n" not in message


@pytest.mark.parametrize("reject,ready", [
    ("jetson:BOARD:18", "jetson:BOARD:18"),
    ("jetson:BOARD:18", "jetson:BCM:24"),  # header pin 18 in both numberings
    ("jetson:CVM:GPIO09", "jetson:cvm:gpio09"),
    ("gpiod:/dev/gpiochip0:17", "gpiod:/dev/gpiochip0:17"),
    ("gpiod:/dev/gpiochip0:17", "gpiod:gpiochip0:17"),
])
def test_ready_on_the_reject_line_is_refused_before_either_opens(monkeypatch, reject, ready):
    fake = install_fake_jetson_gpio(monkeypatch)
    gpiod, line = make_fake_gpiod_v2()
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "gpiod.line", line)
    with pytest.raises(DdadError, match="same line.*give READY a pin of its own"):
        open_reject_output(GpioSpec.parse(reject), RejectTiming(), ready=GpioSpec.parse(ready))
    assert fake.calls == [] and gpiod.requests == [], "nothing opened"


def test_ready_on_another_pin_is_accepted(monkeypatch):
    fake = install_fake_jetson_gpio(monkeypatch)
    output = open_reject_output(GpioSpec.parse("jetson:BCM:24"), RejectTiming(),
                                ready=GpioSpec.parse("jetson:BCM:23"))  # header pins 18 and 16
    output.close()
    assert [c[1] for c in fake.calls if c[0] == "setup"] == [24, 23]


def test_jetson_gpio_refusing_to_load_for_permissions_names_the_group(monkeypatch):
    """Jetson.GPIO's sysfs versions raise RuntimeError at import when the user may not use the GPIOs."""
    import importlib

    def refuse(name):
        raise RuntimeError("The current user does not have permissions set to access the library functionalites.")

    monkeypatch.setattr(importlib, "import_module", refuse)
    with pytest.raises(DdadError, match="BOARD pin 18 .*add it to the gpio group"):
        JetsonLine("reject", "BOARD", 18, initial_high=False)


def test_gpiod_v2_gets_the_chip_as_a_path(monkeypatch):
    """libgpiod v2's request_lines opens the path it is given; 'gpiochip0' (v1's name form) is opened as
    /dev/gpiochip0."""
    gpiod, line = make_fake_gpiod_v2()
    monkeypatch.setitem(sys.modules, "gpiod", gpiod)
    monkeypatch.setitem(sys.modules, "gpiod.line", line)
    for chip in ("gpiochip0", "0", "/dev/gpiochip0"):
        GpiodLine("reject", chip, 17, initial_high=False).close()
    assert [request.chip for request in gpiod.requests] == ["/dev/gpiochip0"] * 3


def test_jetson_gpio_keeps_its_pinmux_check(monkeypatch):
    fake = install_fake_jetson_gpio(monkeypatch)
    JetsonLine("reject", "BOARD", 18, initial_high=False)
    assert ("pinmux_check", 18) in fake.calls


def test_jetson_gpio_missing_chip_label_is_one_line(monkeypatch):
    install_fake_jetson_gpio(monkeypatch, missing_chip="tegra234-gpio")
    with pytest.raises(DdadError) as err:
        JetsonLine("reject", "BOARD", 18, initial_high=False)
    message = str(err.value)
    assert "tegra234-gpio" in message and "gpiod" in message and "\n" not in message
