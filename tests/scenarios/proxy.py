"""A loopback TCP proxy in front of Redis that can lose one reply, as a connection dropped at the wrong moment does.

The command reaches the server and runs; its reply never reaches the client, whose connection
is closed instead. redis-py then sees a connection error (and may send the command again).
"""

from __future__ import annotations

import contextlib
import socket
import threading


class ReplyLosingProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self._upstream = (upstream_host, upstream_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._marker: bytes | None = None
        self._sockets: list[socket.socket] = []
        self.lost_reply = threading.Event()
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_reply_containing(self, marker: bytes) -> None:
        """Lose the next reply that contains `marker` (once), closing its connection."""
        with self._lock:
            self._marker = marker

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = socket.create_connection(self._upstream)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets.extend((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, destination: socket.socket, replies: bool) -> None:
        tail = b""
        try:
            while data := source.recv(65536):
                if replies and self._should_lose(tail + data):
                    self.lost_reply.set()
                    return
                tail = data[-64:]
                destination.sendall(data)
        except OSError:
            pass
        finally:
            _close(source)
            _close(destination)

    def _should_lose(self, data: bytes) -> bool:
        with self._lock:
            if self._marker is not None and self._marker in data:
                self._marker = None
                return True
            return False


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
