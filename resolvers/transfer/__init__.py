"""Catalogue export and import (issue 3 item 9): operators moving a site copy its apps catalogue
to another database with ``workbench catalogue export`` and ``workbench catalogue import``.

The document is JSON, UTF-8 (``ensure_ascii=False``), keys sorted, indented by 2, ending with a
newline, and deterministic: one catalogue always gives the same bytes. Its shape::

    {"format": "workbench-catalogue", "version": 1,
     "groups": [{"id", "name", "position", "categories": [{"id", "name", "position"}]}],
     "apps":   [{"id", "appKey", "appSecretHash", "name", "identifier", "kind", "icon",
                 "categoryId", "position", "userRemovable", "enabled", "ownerCid",
                 "audience": {"mode", "enterpriseIds": ["1002"]},
                 "platforms": {"PC": {"launchMode", "webUrl", "runPath", "downloadUrl",
                                      "embeddedBrowser", "autoLogin", "loginParams"}},
                 "createdAt", "updatedAt",
                 "legacySigned", "ipAllowlist", "appSecretSealed", "previousSecretHash",
                 "previousSecretSealed", "previousSecretExpiresAt"}],
     "icons":  [{"id", "mediaType", "width", "height", "original", "rendition48"}]}

Groups and their categories come in workbench order, apps and icons by id. Row ids are JSON
numbers; enterprise ids (``ownerCid``, ``enterpriseIds``) are decimal strings, being 64-bit
(SPEC §2). Times are UTC with microseconds (``2026-01-02T03:04:05.000006Z``). An app's ``icon``
is a built-in icon's name or ``sha256:<id>`` of an uploaded one; ``icons`` holds the uploads
that apps use (``original`` and the 48x48 PNG ``rendition48`` in base64). Users' badges and
removals, and the audit log, are not catalogue: they are not exported.

An app's signed legacy mode (SPEC §8) travels with it: ``legacySigned`` (boolean),
``ipAllowlist`` (the normalised comma-separated networks of ``resolvers.addresses``, or null),
``appSecretSealed`` and ``previousSecretSealed`` (``v1.`` + URL-safe base64, see
``resolvers.sealing``, or null), ``previousSecretHash`` (hex SHA-256 or null) and
``previousSecretExpiresAt`` (a time or null): the previous secret of a ``rotateAppSecret``
and the end of its grace period. These six keys came to version 1 later: the export always
writes them, an import takes an app without them (a file exported before) with the defaults
false and null, and reports it when that resets an app of the database.

**The file is a secret.** It holds every app's app key, secret hashes and sealed secrets, so
that vendors' app ids, app keys and secrets keep working on the new site (the point of moving
one). That is credential-equivalent data: whoever can import the file somewhere, or read its
keys, stands in for the vendors. Keep it like a credential: the CLI writes it with mode 0600.

Sealed secrets open only with the service key that sealed them (``WORKBENCH_JWT_SECRET``) and
only as the app id they were sealed for. A site with another service key imports them as they
are but cannot open them: there, each signed-mode app (``legacySigned``) must have its secret
rotated (``rotateAppSecret``) before signed calls verify again, and its vendor told the new
secret. The same holds for an app the import matches under another database id. The import
says so: given this site's sealer (the CLI always gives it), it opens every app's sealed
secrets as the app id the app gets here, and each app whose secrets do not open gets a warning
in the report (``ImportReport.warnings``, also among its notes; the CLI prints them on stderr,
dry run or not). Such an app is imported all the same: ``appAccessToken`` needs only the
hashes, and keeps working either way.

Import checks everything before it writes, and reports every problem at once with its path
(``apps[3].platforms.PC.webUrl: must be an absolute http(s) URL``): the document's shape
(strict types, no unknown fields), each app against SPEC §2 (``resolvers.apps.validate_draft``),
group and category names (``resolvers.groups.clean_name``), references (category ids, icons),
icons (SHA-256, and the upload rules of ``resolvers.icons.process_icon``), uniqueness in the
file (ids, app keys, identifiers compared case-insensitively, names), and against the database
(app keys and ids of other apps). The signed-mode fields are checked too: ``ipAllowlist`` with
``resolvers.addresses.parse_allowlist`` (stored normalised), sealed secrets for their form
(whether they open with this site's key is a warning, not a problem: see above), hashes and
times as above.
It then applies the whole file in one transaction, or nothing:

- a group matches the database's group with its id when the names agree (case-insensitively),
  else the group of that name; otherwise it is created with the file's id when free, else a new
  one. Categories likewise, within their group. Names and positions become the file's.
- an app matches the database's app with its identifier (case-insensitively) and takes every
  value of the file in place, keeping its database id (the report says so when the ids differ);
  otherwise it is created with the file's id, app key, secret hashes, sealed secrets and
  times. An id or app key
  that another app of the database holds is an error, never renumbered or taken over.
- an icon is content-addressed (its id is the SHA-256 of its original): created when absent,
  else its other columns become the file's.

Nothing is deleted: what the database holds and the file does not name stays as it is, so the
round trip is exact into an empty database. Importing the same file again changes nothing and
reports everything as unchanged.

The package, one module per part: ``document`` (the format's constants, the pydantic models of
its entries, the encoding), ``state`` (what an app is, read from the database), ``export``,
``problems`` (how a problem is named and ordered), ``validate`` and ``icon_checks`` (every check,
all problems at once), ``apply`` (the one transaction: matching, writes, sequences) and ``report``
(what an import did). The names below are the API the CLI and the tests use.
"""

from resolvers.transfer.apply import import_catalogue
from resolvers.transfer.document import (
    FORMAT,
    MAX_DOCUMENT_BYTES,
    VERSION,
    AppDocument,
    AudienceDocument,
    CategoryDocument,
    GroupDocument,
    IconDocument,
    PlatformDocument,
    encode_document,
)
from resolvers.transfer.export import Export, export_catalogue
from resolvers.transfer.report import Counts, ImportReport
from resolvers.transfer.state import APP_FIELDS, PLATFORM_SETTINGS

__all__ = [
    "APP_FIELDS",
    "FORMAT",
    "MAX_DOCUMENT_BYTES",
    "PLATFORM_SETTINGS",
    "VERSION",
    "AppDocument",
    "AudienceDocument",
    "CategoryDocument",
    "Counts",
    "Export",
    "GroupDocument",
    "IconDocument",
    "ImportReport",
    "PlatformDocument",
    "encode_document",
    "export_catalogue",
    "import_catalogue",
]
