"""Which repository URLs the catalog fetches, and the one normalised form used to compare them.

Accepted: `https://host/path`, `ssh://[user@]host[:port]/path`, scp-style `user@host:path`, and
`file:///path` only when CATALOG_ALLOW_FILE_URLS=true (development and tests). Everything else
(`http://`, `git://`, `ext::`, options disguised as URLs) is refused, and so are credentials in the
URL: they belong in the repository's authSecret, which is stored encrypted.

Where a URL may point (checked when the repository is added AND again before every fetch, because
DNS answers change: the fetch is then pinned to the addresses that were checked):
- always refused: the cloud metadata addresses (169.254.169.254, fd00:ec2::254, 100.100.100.200),
  any other link-local address, unspecified and multicast addresses;
- refused unless CATALOG_ALLOW_PRIVATE_URLS=true: loopback (and `localhost`), private, unique-local,
  shared (CGNAT) and reserved ranges, i.e. anything that is not globally routable. An in-cluster
  Gitea needs the switch; the metadata service never becomes reachable through it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from urllib.parse import SplitResult, urlsplit

from streamspace.config import environment
from streamspace.domain.errors import ValidationError
from streamspace.records import record

FIELD = "url"
MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"https": 443, "ssh": 22}

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_HOST_LABEL = r"(?!-)[a-z0-9-]{1,63}(?<!-)"
_HOST_RE = re.compile(rf"^{_HOST_LABEL}(\.{_HOST_LABEL})*\.?$")
_SCP_RE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._~-]+)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):(?P<path>.+)$")
_USER_RE = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@record
class RepositoryUrl:
    raw: str  # exactly what git is given
    scheme: str  # https | ssh | file
    host: str | None  # lowercase, without brackets; None for file URLs
    port: int | None  # as written; None means the scheme's default
    path: str
    user: str | None = None  # ssh login name (not a secret)

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS.get(self.scheme, 0)

    @property
    def normalized(self) -> str:
        return _normalized(self.scheme, self.host, self.port, self.path)


def _normalized(scheme: str, host: str | None, port: int | None, path: str) -> str:
    """Scheme-independent for network URLs (https and ssh forms of one repository compare equal):
    `host[:port]/path`, lowercase, without `.git`, trailing slashes or credentials."""
    if scheme == "file":
        clean = os.path.normpath(path) if path else "/"
        clean = clean.rstrip("/") or "/"
        if clean.endswith(".git"):
            clean = clean[:-4]
        return "file://" + clean
    clean = path.strip("/")
    if clean.startswith("~"):
        clean = clean[1:].lstrip("/")
    while clean.endswith(".git") or clean.endswith("/"):
        clean = clean[:-4] if clean.endswith(".git") else clean[:-1]
    host_part = (host or "").rstrip(".")
    if ":" in host_part:
        host_part = f"[{host_part}]"
    if port is not None and port != DEFAULT_PORTS.get(scheme):
        host_part += f":{port}"
    return f"{host_part}/{clean}".lower()


def _refuse(message: str) -> ValidationError:
    return ValidationError(FIELD, message)


def _check_host(host: str) -> str:
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOST_RE.fullmatch(host) or len(host) > 253:
        raise _refuse(f"{host!r} is not a valid host name")
    return host.rstrip(".")


def _port(split: SplitResult) -> int | None:
    try:
        port = split.port
    except ValueError:
        raise _refuse("the port must be a number from 1 to 65535") from None
    if port is not None and not 1 <= port <= 65535:
        raise _refuse("the port must be a number from 1 to 65535")
    return port


def parse_repository_url(url: object, *, allow_file: bool) -> RepositoryUrl:
    """Syntax and scheme rules only (no DNS). ValidationError("url", ...) naming what is wrong."""
    if not isinstance(url, str) or not url.strip():
        raise _refuse("a repository URL is required, such as https://github.com/org/templates.git")
    if url != url.strip() or len(url) > MAX_URL_LENGTH or any(c.isspace() or ord(c) < 32 or ord(c) == 127
                                                              for c in url):
        raise _refuse(f"must be at most {MAX_URL_LENGTH} characters without spaces or control characters")
    if url.startswith("-"):
        raise _refuse("must not start with '-'")
    lowered = url.lower()
    if "://" not in url:
        if "::" in url:
            raise _refuse("git's <transport>::<address> form is refused: use https://, ssh:// or user@host:path")
        found = _SCP_RE.fullmatch(url)
        if found is None or "/" in url.split(":", 1)[0]:
            raise _refuse("expected https://host/path, ssh://host/path or user@host:path")
        host = _check_host(found["host"])
        return RepositoryUrl(url, "ssh", host, None, found["path"], found["user"])
    scheme = lowered.split("://", 1)[0]
    split = urlsplit(url)
    if scheme == "file":
        if not allow_file:
            raise _refuse("file:// URLs are refused (set CATALOG_ALLOW_FILE_URLS=true for local development)")
        if split.netloc or not split.path.startswith("/") or split.query or split.fragment:
            raise _refuse("expected file:///absolute/path")
        return RepositoryUrl(url, "file", None, None, split.path)
    if scheme == "http":
        raise _refuse("http:// is refused: use https:// (or ssh://)")
    if scheme not in ("https", "ssh"):
        raise _refuse(f"the {scheme}:// scheme is refused: use https://, ssh:// or user@host:path")
    if split.password is not None or (scheme == "https" and split.username is not None):
        raise _refuse("credentials in the URL are refused: give them as authType and authSecret")
    if split.query or split.fragment:
        raise _refuse("a repository URL has no query or fragment")
    if not split.hostname:
        raise _refuse("the URL names no host")
    host = _check_host(split.hostname)
    port = _port(split)
    path = split.path
    if not path.strip("/"):
        raise _refuse("the URL names no repository path")
    user = split.username
    if user is not None and not _USER_RE.fullmatch(user):
        raise _refuse("the ssh user name may hold only letters, digits and . _ ~ -")
    return RepositoryUrl(url, scheme, host, port, path, user)


def address_refusal(address: IpAddress, *, allow_private: bool) -> str | None:
    """Why the catalog must not connect to `address`, or None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address"
    if allow_private:
        return None
    if address.is_loopback:
        return "a loopback address"
    if not address.is_global:
        return "a private or reserved address"
    return None


def resolve_destination(parsed: RepositoryUrl, *, allow_private: bool) -> list[str]:
    """Resolve the host and check every address it has; returns them (the fetch is pinned to them).
    File URLs resolve to nothing."""
    if parsed.scheme == "file" or parsed.host is None:
        return []
    host = parsed.host
    if not allow_private and (host == "localhost" or host.endswith(".localhost")):
        raise _refuse(f"host {host} is refused: it is this machine (set CATALOG_ALLOW_PRIVATE_URLS=true to allow)")
    try:
        infos = socket.getaddrinfo(host, parsed.effective_port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError):
        raise _refuse(f"host {host} does not resolve") from None
    addresses: list[str] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        reason = address_refusal(address, allow_private=allow_private)
        if reason is not None:
            hint = "" if "metadata" in reason or "link-local" in reason or allow_private else \
                " (set CATALOG_ALLOW_PRIVATE_URLS=true to allow private networks)"
            raise _refuse(f"host {host} resolves to {address}, {reason}, which is refused{hint}")
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise _refuse(f"host {host} does not resolve")
    return addresses


def check_repository_url(url: object, *, resolve: bool = True) -> tuple[RepositoryUrl, list[str]]:
    """The configured rules (CATALOG_ALLOW_FILE_URLS, CATALOG_ALLOW_PRIVATE_URLS) applied to `url`:
    (parsed URL, checked addresses). Raises ValidationError("url", ...)."""

    conf = environment()
    parsed = parse_repository_url(url, allow_file=conf.catalog_allow_file_urls)
    addresses = resolve_destination(parsed, allow_private=conf.catalog_allow_private_urls) if resolve else []
    return parsed, addresses


def normalize_url(url: object) -> str | None:
    """The comparison form of any repository URL a webhook may send (https, http, ssh, scp-style,
    file), or None when it is not one. Lenient: this only matches, it never authorises a fetch."""
    if not isinstance(url, str) or not url or len(url) > MAX_URL_LENGTH:
        return None
    if "://" not in url:
        found = _SCP_RE.fullmatch(url)
        if found is None:
            return None
        try:
            host = _check_host(found["host"])
        except ValidationError:
            return None
        return _normalized("ssh", host, None, found["path"])
    split = urlsplit(url)
    scheme = split.scheme.lower()
    if scheme == "file":
        return _normalized("file", None, None, split.path)
    if scheme not in ("https", "http", "ssh", "git") or not split.hostname:
        return None
    try:
        host = _check_host(split.hostname)
        port = _port(split)
    except ValidationError:
        return None
    return _normalized("https" if scheme in ("http", "https") and port in (None, 80, 443) else scheme, host,
                       None if port in (80, 443) and scheme in ("http", "https") else port, split.path)
