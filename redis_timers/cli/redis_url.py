"""Redis locations as they may appear in logs and on screen: never with a password."""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

from redis.connection import parse_url

HIDDEN = "***"
URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"]+")


def redact_url(url: str) -> str:
    """`redis://user:secret@host:6379/0` -> `redis://user:***@host:6379/0`; a `password=` query value too."""
    parts = urllib.parse.urlsplit(url)
    redacted = url
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        user = userinfo.partition(":")[0]
        redacted = redacted.replace(f"//{parts.netloc}", f"//{user}:{HIDDEN}@{hostport}", 1)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        query = "&".join(
            f"{name}={HIDDEN if name == 'password' else urllib.parse.quote(value, safe='')}" for name, value in pairs
        )
        redacted = redacted.replace(f"?{parts.query}", f"?{query}", 1)
    return redacted


def redact_urls(text: str) -> str:
    """`text` with every URL in it redacted (`redact_url`): for messages that echo what was typed."""
    return URL_IN_TEXT.sub(lambda match: redact_url(match.group()), text)


def describe_client(client: Any) -> str:
    """Where a redis-py client connects, as a URL without the password (best effort: any client type)."""
    pool = getattr(client, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        # A cluster client has a pool per node: name the node it was made from (it found the others from there).
        startup = getattr(getattr(client, "nodes_manager", None), "startup_nodes", None)
        if isinstance(startup, dict) and startup:
            return f"a Redis Cluster, via {min(startup)}"
        return type(client).__name__
    db = kwargs.get("db", 0)
    user = kwargs.get("username") or ""
    credentials = f"{user}:{HIDDEN}@" if kwargs.get("password") else (f"{user}@" if user else "")
    if kwargs.get("path"):
        return f"unix://{credentials}{kwargs['path']}?db={db}"
    connection_class = getattr(pool, "connection_class", None)
    scheme = "rediss" if "SSL" in getattr(connection_class, "__name__", "") else "redis"
    host = kwargs.get("host", "localhost")
    if ":" in str(host):
        host = f"[{host}]"
    return f"{scheme}://{credentials}{host}:{kwargs.get('port', 6379)}/{db}"


def check_redis_url(url: str) -> str:
    """`url` if redis-py can use it as it reads; otherwise a ValueError that never shows its password.

    redis-py itself ignores a path that is not a database number (`redis://host/abc` is database 0),
    so that is refused here too, with negative numbers, which no server accepts.
    """
    shown = redact_url(url)
    try:
        options = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError as error:
        raise ValueError(f"not a usable Redis URL: {shown!r}: {error}") from None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("redis", "rediss") and "db" not in options and parts.path.strip("/"):
        raise ValueError(f"the path of {shown!r} must be a database number (as in redis://host:6379/0)")
    if int(options.get("db", 0)) < 0:
        raise ValueError(f"the database number of {shown!r} must be >= 0")
    return url
