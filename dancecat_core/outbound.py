"""Reaching a host a user named (webhooks, chat): the server-side request forgery guard.

Whoever may save a job may name any URL as its destination, and DanceCat's worker then
connects to it from inside your network. Unless ``DELIVERY_ALLOW_PRIVATE_HOSTS`` is true,
only public addresses are reached: loopback, private (RFC 1918, IPv6 ULA), link-local
(cloud metadata at 169.254.169.254), carrier-grade NAT, multicast and unspecified
addresses are refused, including inside IPv4-mapped, NAT64 and 6to4 IPv6 addresses.

The check is made on the addresses the name resolves to *at connect time*, and the socket
connects to the very address that was checked: a name that resolves to a public address
when the job is saved and to 127.0.0.1 when it is delivered (DNS rebinding), or a host
spelled ``0x7f.1``, ``2130706433``, ``[::ffff:127.0.0.1]`` or ``localhost.``, is refused
the same way.
"""

from __future__ import annotations

import ipaddress
import socket

from dancecat_core.errors import DancecatError

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class RefusedHost(DancecatError):
    """A destination whose address is not public, while private hosts are not allowed."""


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def is_public(address: str | IPAddress) -> bool:
    """True for an address on the public internet (and any IPv4 it embeds too)."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return False
    inner = _embedded_v4(ip)
    if inner is not None and not is_public(inner):
        return False
    return ip.is_global and not ip.is_multicast


def is_local_name(host: str) -> bool:
    """``localhost`` in any spelling (trailing dot, case, ``*.localhost``: RFC 6761)."""
    name = host.strip().rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def literal_refusal(host: str, allow_private: bool) -> str | None:
    """Why ``host`` is refused before any lookup (a non-public literal address or a
    localhost name), for a clear error when the destination is saved; None if not."""
    if allow_private:
        return None
    if is_local_name(host):
        return f"{host} is this machine"
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return None if is_public(ip) else f"{host} is not a public address"


def resolve(host: str, port: int, *, allow_private: bool) -> list[tuple]:
    """``getaddrinfo`` answers for ``host``; ``RefusedHost`` if any is not public (a name
    with one private address among public ones is refused whole)."""
    if not allow_private and is_local_name(host):
        raise RefusedHost(f"{host} is this machine; {_HINT}")
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DancecatError(f"cannot resolve {host}: {exc.strerror}") from None
    if not allow_private:
        for *_, sockaddr in answers:
            if not is_public(sockaddr[0]):
                raise RefusedHost(f"{host} resolves to {sockaddr[0]}, not public; {_HINT}")
    return answers


_HINT = "private, loopback and link-local hosts need DELIVERY_ALLOW_PRIVATE_HOSTS"


def connect(host: str, port: int, *, timeout: float, allow_private: bool) -> socket.socket:
    """A TCP socket to ``host``, connected to an address checked by ``resolve`` (the one
    the check saw, so a second lookup cannot swap it)."""
    last: OSError | None = None
    for family, kind, proto, _, sockaddr in resolve(host, port, allow_private=allow_private):
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last or DancecatError(f"cannot reach {host}:{port}")
