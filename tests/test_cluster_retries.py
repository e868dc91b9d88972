"""cluster.fetch retries, resets and expired tokens, against a small fake HTTP server.

A real apiserver cannot be made to drop a connection mid-list or answer 429/5xx on demand;
everything else is tested on the real one in test_cluster.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client as kc

from rbac_advisor import cluster
from rbac_advisor.errors import ClusterError, ClusterForbidden, ClusterUnreachable

Action = Callable[[BaseHTTPRequestHandler], None]


def page(items: list[dict[str, Any]], token: str = "") -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps({"kind": "RoleList", "metadata": {"continue": token},
                           "items": items}).encode()  # fmt: skip
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return act


def status(code: int, retry_after: str | None = None) -> Action:
    def act(h: BaseHTTPRequestHandler) -> None:
        body = json.dumps({"kind": "Status", "code": code, "message": f"fake {code}"}).encode()
        h.send_response(code)
        if retry_after is not None:
            h.send_header("Retry-After", retry_after)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return act


def reset(h: BaseHTTPRequestHandler) -> None:
    h.connection.setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
    )
    h.connection.close()
    h.close_connection = True


class QuietServer(ThreadingHTTPServer):
    """Handler threads are joined on close, and a client that hung up is not an error."""

    daemon_threads = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass


class Fake:
    def __init__(self, script: list[Action]) -> None:
        self.script = list(script)
        self.paths: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 1  # an idle kept-alive connection must not hold up server_close()

            def do_GET(self) -> None:
                fake.paths.append(self.path)
                action = fake.script.pop(0) if fake.script else status(599)
                action(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = QuietServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        cfg = kc.Configuration()
        cfg.host = f"http://127.0.0.1:{self.server.server_address[1]}"
        cfg.retries = False
        self.api = kc.ApiClient(cfg)

    def fetch(self, **kw: Any) -> list[dict[str, Any]]:
        kinds = (cluster.KINDS[0],)
        return cluster.fetch_with(self.api, kinds=kinds, backoff=0.01, **kw)

    def close(self) -> None:
        self.api.close()  # closes kept-alive connections, so handler threads can finish
        self.server.shutdown()
        self.server.server_close()  # joins handler threads still writing to dropped clients


def role(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns"}, "rules": []}


@pytest.fixture
def fake() -> Iterator[Callable[[list[Action]], Fake]]:
    made: list[Fake] = []

    def make(script: list[Action]) -> Fake:
        made.append(Fake(script))
        return made[-1]

    yield make
    for f in made:
        f.close()


def test_retries_429_and_5xx_then_succeeds(fake: Callable[[list[Action]], Fake]) -> None:
    f = fake([status(429, "0"), page([role("a")], "t1"), status(503), status(500),
              page([role("b")])])  # fmt: skip
    items = f.fetch(page_size=1)
    assert [o["metadata"]["name"] for o in items] == ["a", "b"]
    assert [o["kind"] for o in items] == ["Role", "Role"]
    assert len(f.paths) == 5
    assert "continue=t1" in f.paths[-1] and "limit=1" in f.paths[-1]


def test_persistent_5xx_fails_without_partial_result(fake: Callable[[list[Action]], Fake]) -> None:
    f = fake([page([role("a")], "t1")] + [status(500)] * cluster.MAX_ATTEMPTS)
    with pytest.raises(ClusterError, match="HTTP 500") as err:
        f.fetch()
    assert not isinstance(err.value, ClusterForbidden)
    assert len(f.paths) == 1 + cluster.MAX_ATTEMPTS


def test_connection_reset_mid_pagination_is_retried(fake: Callable[[list[Action]], Fake]) -> None:
    f = fake([page([role("a")], "t1"), reset, page([role("b")], "t2"), page([role("c")])])
    items = f.fetch()
    assert [o["metadata"]["name"] for o in items] == ["a", "b", "c"]
    assert sum("continue=t1" in p for p in f.paths) == 2


def test_repeated_resets_become_unreachable(fake: Callable[[list[Action]], Fake]) -> None:
    f = fake([reset] * cluster.MAX_ATTEMPTS)
    with pytest.raises(ClusterUnreachable, match="failed 5 times"):
        f.fetch()


def test_410_on_continue_relists_from_start(fake: Callable[[list[Action]], Fake]) -> None:
    f = fake([page([role("a")], "t1"), status(410), page([role("a")], "t3"),
              page([role("b")])])  # fmt: skip
    items = f.fetch()
    assert [o["metadata"]["name"] for o in items] == ["a", "b"]
    assert "continue" not in f.paths[2]


def test_410_forever_gives_up(fake: Callable[[list[Action]], Fake]) -> None:
    f = fake([page([role("a")], "t1"), status(410)] * (cluster.MAX_RELISTS + 1))
    with pytest.raises(ClusterError, match="continue token"):
        f.fetch()


def test_read_timeout_is_retried_then_reported(fake: Callable[[list[Action]], Fake]) -> None:
    def slow(h: BaseHTTPRequestHandler) -> None:
        time.sleep(1.5)
        page([role("late")])(h)

    f = fake([slow] * cluster.MAX_ATTEMPTS)
    with pytest.raises(ClusterUnreachable, match=r"no answer within 0\.3s"):
        f.fetch(timeout=0.3)
