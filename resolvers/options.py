"""Service options the resolvers need from the configuration, without importing ``settings``
(resolvers know no transport and no environment). ``app.py`` builds them from ``Settings``."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceOptions:
    """``ticket_ttl_s``: SSO ticket lifetime (SPEC §5, default 300 s); ``secret_grace_s``: how
    long a rotated-out app secret still works (SPEC §8); ``vendor_token_ttl_s``: lifetime of a
    vendor access token (SPEC §8: 2 h); ``push_coalesce_s``: notices for one device and app
    within this window make one push (issue 4 item 5)."""

    ticket_ttl_s: int = 300
    secret_grace_s: int = 86_400
    vendor_token_ttl_s: int = 7200
    push_coalesce_s: float = 0.5
