from __future__ import annotations

import os

import redis

from switchboard.redis_server import EmbeddedRedis, free_port


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it must not be left unreaped either.
    with open(f"/proc/{pid}/stat") as f:
        return f.read().split()[2] != "Z"


def test_starts_on_loopback_and_stops_cleanly() -> None:
    server = EmbeddedRedis()
    url = server.start()
    pid = server.pid
    assert pid is not None
    assert url.startswith("redis://127.0.0.1:")
    client = redis.Redis.from_url(url)
    assert client.ping()
    assert client.config_get("bind")["bind"] == "127.0.0.1"
    assert client.config_get("save")["save"] == ""
    client.close()
    port = server.port
    server.stop()
    assert not _alive(pid)
    # The port is free again.
    assert port is not None
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_requested_port_is_used() -> None:
    port = free_port()
    with EmbeddedRedis(port=port) as server:
        assert server.url == f"redis://127.0.0.1:{port}/0"
