"""The seed's PHP-era vendor endpoints, byte-compatible and frozen (SPEC §6).

Vendors already call these from servers and from browser JavaScript (jQuery ``$.ajax``); their
code is not ours to change, so this package promises, and tests byte for byte:

- Paths ``/OpenPlatform/integrate/{getappid,pushappnotice,setnum}.php`` (the seed's three) and
  ``checkticket.php`` (the SSO ticket check, SPEC §5), also with spaces around
  path segments (the seed's samples write ``"http://url/ OpenPlatform/.../pushappnotice.php "``);
  otherwise case-sensitive.
- GET and POST alike; parameters from the query string and from a form-urlencoded or multipart
  body (the body wins on a clash, as PHP's ``$_REQUEST``); parameter names trimmed (the seed sends
  ``"fromcid "``); ``users`` as a JSON array string or as jQuery's ``users[]=`` repetition.
- Always HTTP 200, ``Content-Type: application/json``, and exactly the bodies of SPEC §6; the
  reason for a failure only in the ``X-Error-Reason`` header and the log.
- Whole or nothing: a refused request changes nothing. The body is capped before parsing, at
  what 10,000 recipients need (``MAX_BODY_BYTES``), and cheap limits (the app, the number of
  recipients) are checked before the recipients are read.

The package parses, calls ``resolvers``, and encodes. It holds no business rule of its own.
"""

from legacy_rest.endpoints import legacy_routes, normalise_legacy_path
from legacy_rest.params import MAX_BODY_BYTES

__all__ = ["MAX_BODY_BYTES", "legacy_routes", "normalise_legacy_path"]
