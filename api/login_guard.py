"""Who is asking (client address, X-Forwarded-For only from trusted proxies) and the login throttle of the app."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from fastapi import Request

from grader.settings import get_settings
from grader.throttle import LoginThrottle

IPV6_CLIENT_PREFIX = 64  # one subscriber usually holds a whole /64: count it as one client


@lru_cache(maxsize=8)
def _networks(setting: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in setting.split(",") if part.strip())


def _trusted(address: str, networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def client_address(request: Request) -> str:
    """The client's address: the peer, or behind trusted proxies the nearest X-Forwarded-For hop not one of them.

    A client can write anything at the front of X-Forwarded-For; only the entries the trusted proxies appended
    (read from the right) are believed."""
    peer = request.client.host if request.client else ""
    networks = _networks(get_settings().trusted_proxies)
    address = peer
    if networks and _trusted(peer, networks):
        hops = [hop.strip() for header in request.headers.getlist("x-forwarded-for") for hop in header.split(",")]
        for hop in reversed([hop for hop in hops if hop]):
            address = hop
            if not _trusted(hop, networks):
                break
    return _client_key(address)


def _client_key(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(ip)


def login_throttle(request: Request) -> LoginThrottle:
    """The app's throttle, made on first use from the settings in force."""
    state = request.app.state
    if getattr(state, "login_throttle", None) is None:
        state.login_throttle = LoginThrottle.from_settings(get_settings())
    return state.login_throttle


def wait_message(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"Too many failed logins for this account or from this address. Try again in {minutes} minute(s)."
