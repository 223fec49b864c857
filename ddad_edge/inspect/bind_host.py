"""The one rule for the address a server of the loop binds to (`--http-host`, `--metrics-host`).

An empty address means "every interface" to Python's socket servers, and an unset variable in a systemd
unit (`--http-host "$HOST"`) gives exactly that: the status page of a line would face the plant network
without anyone asking for it. So an empty or blank address is refused in one line, for both servers;
every interface is still one explicit `0.0.0.0` (or `::`) away.
"""

from __future__ import annotations

from ddad_edge.errors import DdadError


def check_bind_host(host: str, option: str) -> str:
    """`host` unchanged, or a DdadError naming `option` when it is empty or blank."""
    if not isinstance(host, str) or not host.strip():
        raise DdadError(f"{option} {host!r} is empty: give an address, 127.0.0.1 (this PC only, the default) "
                        "or 0.0.0.0 (every interface)")
    return host
