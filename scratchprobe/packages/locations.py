"""Where apk's and rpm's databases live in a root: one list each, which their readers use
and which `find_owners` checks (Root.may_exist) before it imports a reader at all."""

from __future__ import annotations

APK_INSTALLED = ("/lib/apk/db/installed", "/usr/lib/apk/db/installed")
"""apk-tools 2 keeps its database under /lib; apk-tools 3 on a merged-/usr Alpine looks
under /usr/lib as well."""

RPM_DIRS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
RPM_SQLITE = "rpmdb.sqlite"
RPM_UNSUPPORTED = {"Packages": "Berkeley DB", "Packages.db": "ndb"}
RPM_DATABASES = tuple(f"{d}/{n}" for d in RPM_DIRS for n in (RPM_SQLITE, *RPM_UNSUPPORTED))
"""Every file whose presence find_rpm reports: the sqlite rpmdb it reads, and the older
formats it names in a warning."""
