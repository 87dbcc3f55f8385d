"""core.http_client's HTTP/1.1 subset against a loopback socket answering with canned bytes: the
answer framings a server may choose (Content-Length, chunked, read to close, HTTP/1.0), connections
kept or closed as the answer says, and answers that are not HTTP refused with the server named.
(InfluxDB itself answers these requests in tests/integration/test_influx_write.py.)"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from core.http_client import HttpUnreachable, KeptAliveHttp


class CannedServer:
    """Accepts connections; on each, reads one request at a time and answers with the next canned
    answer (an empty one: closes the connection instead). Records the requests and how many
    connections were made."""

    def __init__(self, answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while self.answers:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                while self.answers:
                    request = self._read_request(conn)
                    if request is None:
                        break
                    self.requests.append(request)
                    answer = self.answers.pop(0)
                    if not answer:  # closed without a word
                        break
                    conn.sendall(answer)
                    if b"Connection: close" in answer or answer.startswith(b"HTTP/1.0"):
                        break

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes | None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(
            b"content-length")))
        while len(body) < length:
            body += conn.recv(65536)
        return head + b"\r\n\r\n" + body

    def close(self) -> None:
        self._listener.close()


@pytest.fixture()
def serve() -> Iterator[type[CannedServer]]:
    servers: list[CannedServer] = []

    def start(answers: list[bytes]) -> CannedServer:
        server = CannedServer(answers)
        servers.append(server)
        return server

    yield start  # type: ignore[misc]
    for server in servers:
        server.close()


def test_framings_are_read_and_the_connection_kept_while_the_answer_allows(serve) -> None:
    server = serve([
        b"HTTP/1.1 204 No Content\r\nX-Influxdb-Version: 1.6.7\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: x\r\n\r\n",
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 29\r\nConnection: close\r\n\r\n"
        b'{"error":"unable to parse"}\n\n',
        b"HTTP/1.0 200 OK\r\n\r\nuntil the end",
    ])
    http = KeptAliveHttp(f"http://127.0.0.1:{server.port}/prefix/", timeout_s=5)
    assert http.request("POST", "/write?db=x", b"m n=1i 1\n", {"Content-Type": "text/plain"}) == (204, b"")
    assert http.request("GET", "/ping") == (200, b"hello")
    assert http.request("GET", "/query?q=x") == (200, b"abcde")
    assert server.connections == 1  # kept alive through the three
    assert http.request("POST", "/write", b"bad") == (400, b'{"error":"unable to parse"}\n\n')
    assert http.request("GET", "/ping") == (200, b"until the end")  # a new connection after "close"
    assert server.connections == 2
    first = server.requests[0]
    assert first.startswith(b"POST /prefix/write?db=x HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Length: 9\r\n" in first and b"\r\nContent-Type: text/plain\r\n" in first
    assert first.endswith(b"\r\n\r\nm n=1i 1\n")
    http.close()


@pytest.mark.parametrize("answer", [b"SSH-2.0-OpenSSH_9.2\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b""])
def test_an_answer_that_is_not_http_or_cut_short_is_refused_naming_the_server(serve, answer: bytes) -> None:
    server = serve([answer])
    http = KeptAliveHttp(f"http://127.0.0.1:{server.port}", timeout_s=2)
    with pytest.raises(HttpUnreachable, match=f"http://127.0.0.1:{server.port}: "):
        http.request("GET", "/ping")
    http.close()


def test_nothing_listening_and_silence_are_refused_with_the_cause() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    silent = KeptAliveHttp(f"http://127.0.0.1:{port}", timeout_s=0.3)
    with pytest.raises(HttpUnreachable, match=r"no answer within 0\.3 s"):
        silent.request("GET", "/ping")  # accepted by the kernel, never answered
    listener.close()
    with pytest.raises(HttpUnreachable, match="ConnectionRefusedError"):
        KeptAliveHttp(f"http://127.0.0.1:{port}", timeout_s=2).request("GET", "/ping")
