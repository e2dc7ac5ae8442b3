"""A local Microsoft Graph for the tests, answering as Microsoft documents it.

- ``GET /v1.0/users/{mailbox}/mailFolders/{id or well-known name}``: the folder, with
  ``totalItemCount``; ``GET .../mailFolders?$filter=displayName eq 'X'``.
- ``GET .../mailFolders/{id}/messages/delta``: pages of ``Prefer: odata.maxpagesize``
  items (here at most ``page_size``), ``@odata.nextLink`` between them and
  ``@odata.deltaLink`` after the last; a delta link gives what changed since, with
  ``@removed`` for deleted messages and changed messages listed again (as Graph does
  when one is read).
- ``GET .../messages/{id}/$value``: the MIME message.
- Every request needs a bearer token that the token server (tests/oauth_server.py)
  says is active. Faults on demand: ``throttle`` answers 429 with ``Retry-After`` to
  the next requests, ``drop_after`` closes the connection without an answer after
  that many more ``$value`` requests.
"""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.oauth_server import TokenServer, serving


@dataclass
class Folder:
    id: str
    name: str
    messages: dict[str, bytes] = field(default_factory=dict)


@dataclass
class GraphServer:
    tokens: TokenServer
    port: int = 0
    page_size: int = 3
    folders: dict[str, dict[str, Folder]] = field(default_factory=dict)  # mailbox: id: folder
    # The change log: (sequence, folder id, message id, "add"/"change"/"remove").
    changes: list[tuple[int, str, str, str]] = field(default_factory=list)
    throttle: int = 0  # answer throttle_status to this many next requests
    throttle_status: int = 429  # or 503 (Service Unavailable), also with Retry-After
    retry_after: str = "1"
    drop_after: int | None = None  # close the connection on the n+1th $value from now
    requests: list[str] = field(default_factory=list)
    value_requests: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1.0"

    def folder(self, mailbox: str, folder_id: str, name: str) -> Folder:
        found = self.folders.setdefault(mailbox, {}).setdefault(folder_id, Folder(folder_id, name))
        return found

    def add(self, mailbox: str, folder_id: str, message_id: str, raw: bytes) -> None:
        self.folders[mailbox][folder_id].messages[message_id] = raw
        self.changes.append((len(self.changes) + 1, folder_id, message_id, "add"))

    def touch(self, folder_id: str, message_id: str) -> None:
        """The message was read: Graph lists it again in the next delta."""
        self.changes.append((len(self.changes) + 1, folder_id, message_id, "change"))

    def remove(self, mailbox: str, folder_id: str, message_id: str) -> None:
        del self.folders[mailbox][folder_id].messages[message_id]
        self.changes.append((len(self.changes) + 1, folder_id, message_id, "remove"))

    # -- answers ---------------------------------------------------------------------

    def _delta(self, mailbox: str, folder: Folder, query: dict[str, str]) -> dict[str, Any]:
        since = int(query.get("$deltatoken", "0"))
        skip = int(query.get("$skiptoken", "0"))
        head = len(self.changes)
        if "$headtoken" in query:  # the change log as it was when the round began
            head = int(query["$headtoken"])
        items: list[dict[str, Any]] = []
        listed: set[str] = set()
        for seq, folder_id, message_id, kind in self.changes[:head]:
            if seq <= since or folder_id != folder.id or message_id in listed:
                continue
            if kind == "remove" or message_id not in folder.messages:
                if since:  # an initial round lists only what is there
                    items.append({"id": message_id, "@removed": {"reason": "deleted"}})
                    listed.add(message_id)
                continue
            items.append({"@odata.type": "#microsoft.graph.message", "id": message_id})
            listed.add(message_id)
        page = items[skip : skip + self.page_size]
        base = f"{self.url}/users/{mailbox}/mailFolders/{folder.id}/messages/delta"
        answer: dict[str, Any] = {"value": page}
        if skip + self.page_size < len(items):
            more = {"$deltatoken": str(since), "$skiptoken": str(skip + self.page_size)}
            more["$headtoken"] = str(head)
            answer["@odata.nextLink"] = base + "?" + urllib.parse.urlencode(more)
        else:
            answer["@odata.deltaLink"] = (
                base + "?" + urllib.parse.urlencode({"$deltatoken": str(head)})
            )
        return answer

    def answer(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        if parts[:2] != ["v1.0", "users"] or len(parts) < 4:
            return 404, _error("ResourceNotFound", path)
        mailbox, rest = parts[2], parts[3:]
        folders = self.folders.get(mailbox, {})
        if rest == ["mailFolders"]:
            wanted = query.get("$filter", "").removeprefix("displayName eq '").rstrip("'")
            return 200, {"value": [_folder(f) for f in folders.values() if f.name == wanted]}
        if rest[0] == "mailFolders":
            key = rest[1]
            folder = folders.get(key) or next(
                (f for f in folders.values() if f.name.lower() == key.lower() and key.islower()),
                None,
            )
            if folder is None:
                return 404, _error("ErrorItemNotFound", "The specified folder was not found.")
            if rest[2:] == ["messages", "delta"]:
                return 200, self._delta(mailbox, folder, query)
            return 200, _folder(folder)
        if rest[0] == "messages" and rest[2:] == ["$value"]:
            for folder in folders.values():
                if rest[1] in folder.messages:
                    return 200, folder.messages[rest[1]]
            return 404, _error("ErrorItemNotFound", "The specified object was not found.")
        return 404, _error("ResourceNotFound", path)


def _folder(folder: Folder) -> dict[str, Any]:
    return {
        "id": folder.id,
        "displayName": folder.name,
        "totalItemCount": len(folder.messages),
        "unreadItemCount": 0,
    }


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@contextmanager
def running_graph(tokens: TokenServer) -> Iterator[GraphServer]:
    state = GraphServer(tokens)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # http.server's name
            split = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(split.query))
            with lock:
                state.requests.append(self.path)
                auth = self.headers.get("Authorization", "")
                token = auth.removeprefix("Bearer ")
                if not auth.startswith("Bearer ") or not state.tokens.introspect(token)["active"]:
                    return self._send(401, _error("InvalidAuthenticationToken", "expired"))
                if state.throttle:
                    state.throttle -= 1
                    return self._send(
                        state.throttle_status,
                        _error("TooManyRequests", "Too many requests"),
                        {"Retry-After": state.retry_after},
                    )
                if split.path.endswith("/$value"):
                    state.value_requests += 1
                    if state.drop_after is not None:
                        if state.drop_after == 0:
                            state.drop_after = None
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return None
                        state.drop_after -= 1
                code, body = state.answer(split.path, query)
            return self._send(code, body)

        def _send(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
            if isinstance(body, bytes):
                data, kind = body, "message/rfc822"
            else:
                data, kind = json.dumps(body).encode(), "application/json"
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    with serving(Handler) as port:
        state.port = port
        yield state
