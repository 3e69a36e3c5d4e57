"""The libc functions that look a name-service database up, one list per API family.

glibc serves each database of nss/databases.def (passwd, group, shadow, initgroups, hosts,
services, protocols, networks, ...) through the services nsswitch.conf names; musl and Go
read the same files directly. users.py, nameservice.py and nssmodules.py all ask which of
these a program calls, so the families are written once here (docs/runtime-facts.md, "NSS").
Each family lists the reentrant (_r) and enumeration (*ent) forms beside the plain calls:
a program calls whichever it was written with.
"""

from __future__ import annotations

PASSWD = ("getpwnam", "getpwnam_r", "getpwuid", "getpwuid_r", "getpwent", "getpwent_r",
          "getpw")  # fmt: skip
"""passwd: pwd/*.c; getpw formats getpwuid's entry (pwd/getpw.c)."""
GROUP = ("getgrnam", "getgrnam_r", "getgrgid", "getgrgid_r", "getgrent", "getgrent_r")
"""group: grp/*.c."""
INITGROUPS = ("initgroups", "getgrouplist")
"""initgroups (grp/initgroups.c): the initgroups database, else every group entry."""
LOGIN = ("getlogin", "getlogin_r", "cuserid")
"""The login name, looked up in passwd by uid (sysdeps/unix/sysv/linux/getlogin_r.c reads
/proc/self/loginuid, then getpwuid_r; posix/cuserid.c calls getpwuid_r)."""
SHADOW = ("getspnam", "getspnam_r")
"""shadow: shadow/getspnam.c."""
HOSTS = ("getaddrinfo", "gethostbyname", "gethostbyname_r", "gethostbyname2",
         "gethostbyname2_r", "gethostbyaddr", "gethostbyaddr_r", "getnameinfo",
         "getaddrinfo_a")  # fmt: skip
"""hosts: sysdeps/posix/getaddrinfo.c, inet/gethstbynm*.c, inet/gethstbyad*.c, inet/getnameinfo.c;
getaddrinfo_a (libanl, resolv/gai_misc.c) runs getaddrinfo in a thread."""
RESOLVER = ("res_query", "res_search", "res_init", "__res_query", "__res_search",
            "res_ninit")  # fmt: skip
"""Not NSS: the DNS resolver called directly (glibc resolv/res_query.c, res_init.c) reads
/etc/resolv.conf itself, whatever nsswitch.conf says."""
SERVICES = ("getservbyname", "getservbyname_r", "getservbyport", "getservbyport_r",
            "getservent")  # fmt: skip
"""services: inet/getsrvbynm*.c, inet/getsrvbypt*.c, inet/getservent*.c."""
PROTOCOLS = ("getprotobyname", "getprotobyname_r", "getprotobynumber", "getprotobynumber_r")
"""protocols: inet/getprtname*.c, inet/getprtnum*.c."""

USER_LOOKUPS = PASSWD + GROUP + INITGROUPS + LOGIN + SHADOW
"""Every call that reads the user and group databases."""
HOST_LOOKUPS = HOSTS
"""Every call that resolves a host name or address through NSS."""


def static_lookup(database: str) -> str:
    """The name a static glibc keeps for each database it looks up: getpwnam links
    __nss_passwd_lookup2 (nss/XXX-lookup.c, DB_LOOKUP_FCT)."""
    return f"__nss_{database}_lookup2"
