"""IP allowlists of apps (SPEC §8: "an optional IP allowlist per app applies in both
modes"): parsing what an administrator enters, and matching a caller's address."""

from __future__ import annotations

import ipaddress
import re

from resolvers.errors import InvalidInput

MAX_ALLOWLIST_ENTRIES = 100


def parse_allowlist(raw: str | None, field: str = "input.ipAllowlist") -> str | None:
    """Normalise an IP allowlist: IP addresses or CIDR networks separated by commas or spaces
    (at most 100); ``None`` or blank means "any address". Raises ``InvalidInput``."""
    if raw is None or not raw.strip():
        return None
    entries = [e for e in re.split(r"[,\s]+", raw.strip()) if e]
    if len(entries) > MAX_ALLOWLIST_ENTRIES:
        raise InvalidInput.single(field, f"at most {MAX_ALLOWLIST_ENTRIES} entries", "TOO_MANY")
    networks = []
    for entry in entries:
        try:
            networks.append(str(ipaddress.ip_network(entry, strict=False)))
        except ValueError as error:
            raise InvalidInput.single(
                field, f"{entry[:60]!r} is not an IP address or network", "INVALID_ADDRESS"
            ) from error
    return ",".join(networks)


def address_allowed(allowlist: str | None, client_ip: str | None) -> bool:
    """Whether ``client_ip`` is in ``allowlist`` (``None``: every address is)."""
    if allowlist is None:
        return True
    if client_ip is None:
        return False
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(net) for net in allowlist.split(","))
