"""The service benchmarks' HTTP client: one kept-alive http.client connection per client thread.

The client threads stand for students' machines but run on the service's two cores, so what they burn is taken
from grading. httpx cost about 27 ms of CPU per upload (a new client, SSL context included, for each `httpx.post`)
and 1 ms per status read; http.client with a connection kept per thread costs a fraction of that for the same
requests (same method, path, bearer token and multipart body, same count, same threads).
"""

from __future__ import annotations

import http.client
import threading
import uuid
from urllib.parse import urlsplit

_connections = threading.local()  # (host, port, timeout) -> this thread's connection
# Requests sent a second time after the server closed a reused connection, by method. A POST resent after the server
# had in fact processed it would go unseen (the same file is answered as already received), so benchmarks fail on any.
resent = {"GET": 0, "POST": 0}
_resent_lock = threading.Lock()


def _connection(base_url: str, timeout: float) -> http.client.HTTPConnection:
    parts = urlsplit(base_url)
    key = (parts.hostname, parts.port or 80, timeout)
    table = _connections.__dict__.setdefault("table", {})
    if key not in table:
        table[key] = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    return table[key]


def request(base_url: str, method: str, path: str, *, token: str, body: bytes | None = None,
            content_type: str | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
    """(status, body) of one request on this thread's connection to `base_url`."""
    headers = {"Authorization": f"Bearer {token}"}
    if content_type:
        headers["Content-Type"] = content_type
    connection = _connection(base_url, timeout)
    reused = connection.sock is not None
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
    except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
        connection.close()
        if not reused:
            raise
        # The server closed the idle connection before this request reached it (uvicorn's keep-alive timeout):
        # nothing was processed, so the request is sent once more on a new connection, as browsers and httpx do.
        with _resent_lock:
            resent[method] = resent.get(method, 0) + 1
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
    payload = response.read()
    if response.will_close:
        connection.close()
    return response.status, payload


def multipart_file(field: str, filename: str, content: bytes, content_type: str = "text/x-python") -> tuple[bytes, str]:
    """(body, Content-Type header) of a multipart/form-data form holding one file, as httpx encodes `files=`."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n").encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"
