"""A proxy that records every connection it is asked for and serves none: with HTTP(S)_PROXY pointing at it, any
download a Beam stage tries (Beam's urllib fetch of Prism or a job server jar honours those variables) is caught
by name instead of reaching the network, and the stage falls back or fails as it would offline."""

import socket
import threading
from typing import Dict, List


class DownloadTrap:
    def __init__(self):
        self.requests: List[str] = []
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def env(self) -> Dict[str, str]:
        """The variables that route a process's downloads here (loopback stays direct: the run's own services)."""
        return {name: self.url for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")} | {
            "NO_PROXY": "localhost,127.0.0.1",
            "no_proxy": "localhost,127.0.0.1",
        }

    def _serve(self):
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    first = conn.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
                except OSError:
                    first = "?"
                self.requests.append(first)
                try:
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self._sock.close()
