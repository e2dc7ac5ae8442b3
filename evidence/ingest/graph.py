"""Mail from Microsoft 365 through Microsoft Graph, read-only and incremental.

Each folder is read with a delta query (``/mailFolders/{id}/messages/delta``),
page by page (``@odata.nextLink``), and each message's MIME with
``/messages/{id}/$value``. Nothing on the server changes.

Graph does not keep the bytes as they were received: it rebuilds the MIME
message from its own storage. Each email stored this way has a ``graph://``
source, and the dossier says so next to its hash.

Progress is kept in ``graph_folder_state`` in the transactions that store the
messages: after a page's last message is stored, its ``@odata.nextLink``; after
the last page, the ``@odata.deltaLink``, so the next run fetches only what
changed since. A run that stops (a dropped connection, ^C) resumes at the page it
was on; messages of that page already stored are recognised by their content and
not stored twice. ``@removed`` items (deleted or moved on the server) are skipped:
what the store holds stays. 429 and 503 answers are obeyed: the request is sent
again after ``Retry-After`` seconds.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from evidence.errors import EvidenceError, InvalidInput
from evidence.ingest import ImportReport
from evidence.ingest.imap import is_loopback
from evidence.ingest.mail import MailImporter, Progress, RawMessage, mail_limits
from evidence.ingest.mime import MailLimits
from evidence.ingest.oauth import BearerToken, OAuthClient, OAuthOptions, fetch_token, oauth_client
from evidence.store.db import Store
from evidence.store.models import GraphFolderState, GraphMessage
from evidence.timeutil import utcnow

GRAPH_URL = "https://graph.microsoft.com/v1.0"
PAGE_SIZE = 100  # Prefer: odata.maxpagesize
MAX_RETRIES = 8  # 429/503 answers to one request before giving up
MAX_WAIT = 300.0  # seconds; a longer Retry-After is cut to this


class TokenSource:
    """A token for the client, fetched again shortly before it expires or when refused."""

    def __init__(self, client: OAuthClient, environ: Mapping[str, str] | None = None) -> None:
        self.client = client
        self.environ = environ
        self._token: BearerToken | None = None

    def get(self, *, fresh: bool = False) -> BearerToken:
        if fresh or self._token is None or self._token.expires_at - 60 < time.time():
            self._token = fetch_token(self.client, self.environ)
        return self._token


def graph_tokens(options: OAuthOptions, environ: Mapping[str, str] | None = None) -> TokenSource:
    """The app's tokens for Graph; the first is fetched now, so a refusal shows at once."""
    tokens = TokenSource(oauth_client(options, purpose="graph", user=None), environ)
    tokens.get()
    return tokens


class GraphApi:
    """GET requests to Graph with the app's token; Retry-After obeyed."""

    def __init__(
        self,
        base: str,
        tokens: TokenSource,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 60,
    ) -> None:
        parts = urllib.parse.urlsplit(base)
        if not (
            parts.scheme == "https"
            or (parts.scheme == "http" and is_loopback(parts.hostname or ""))
        ):
            raise InvalidInput(
                f"refusing to send the token to {base}: --graph-url must be https "
                "(plain http only on this machine)"
            )
        self.base = base.rstrip("/")
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.tokens = tokens
        self.sleep = sleep
        self.timeout = timeout

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        return self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")

    def json(self, url: str) -> dict[str, Any]:
        value = json.loads(self.get(url, "application/json"))
        if not isinstance(value, dict):
            raise EvidenceError(f"Graph sent no JSON object for {url}")
        return value

    def get(self, url: str, accept: str) -> bytes:
        if not url.startswith(self.origin + "/"):
            # Links come from the server; the token goes only where --graph-url points.
            raise EvidenceError(f"Graph sent a link to another server ({url}); stopped")
        refreshed = False
        for attempt in range(MAX_RETRIES + 1):
            request = urllib.request.Request(
                url,
                headers={
                    "Authorization": f"Bearer {self.tokens.get(fresh=False).value}",
                    "Accept": accept,
                    "Prefer": f"odata.maxpagesize={PAGE_SIZE}",
                },
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    data: bytes = response.read()
                    return data
            except urllib.error.HTTPError as exc:
                body = exc.read()
                if exc.code in (429, 503) and attempt < MAX_RETRIES:
                    self.sleep(_retry_after(exc.headers.get("Retry-After"), attempt))
                    continue
                if exc.code == 401 and not refreshed:
                    self.tokens.get(fresh=True)
                    refreshed = True
                    continue
                raise GraphError(exc.code, _graph_error(body), url) from None
            except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
                reason = getattr(exc, "reason", None) or exc.__class__.__name__
                raise ConnectionLost(str(reason)) from None
        raise EvidenceError(
            f"Microsoft Graph kept answering 'too many requests' for {url}; run the import "
            "again later: it resumes where it stopped"
        )


class ConnectionLost(EvidenceError):
    def __init__(self, reason: str, stored: int | None = None) -> None:
        self.reason = reason
        kept = f"the {stored} messages stored before it stay; " if stored is not None else ""
        super().__init__(
            f"the connection to Microsoft Graph was lost ({reason}); {kept}run the import "
            "again and it resumes where it stopped"
        )


class GraphError(EvidenceError):
    def __init__(self, code: int, detail: str, url: str) -> None:
        self.code = code
        if code in (401, 403):
            text = (
                f"Microsoft Graph refused the app ({code} {detail}): check that it has the "
                "Mail.Read application permission and that the application access policy "
                "allows this mailbox"
            )
        else:
            text = f"Microsoft Graph answered {code} {detail} for {url}"
        super().__init__(text)


def _retry_after(value: str | None, attempt: int) -> float:
    try:
        seconds = float(value) if value else 2.0**attempt
    except ValueError:
        seconds = 2.0**attempt
    return max(0.0, min(seconds, MAX_WAIT))


def _graph_error(body: bytes) -> str:
    try:
        error = json.loads(body).get("error", {})
        return f"{error.get('code', '')}: {str(error.get('message', '')).splitlines()[0]}"
    except (ValueError, AttributeError, IndexError):
        return ""


@dataclass(frozen=True)
class GraphFolder:
    id: str
    name: str  # display name
    total: int  # totalItemCount when the run read it
    counted_at: dt.datetime


def find_folder(api: GraphApi, mailbox: str, name: str) -> GraphFolder:
    """A folder by its well-known name (inbox, sentitems, ...), id, or display name."""
    user = "/users/" + urllib.parse.quote(mailbox, safe="@")
    try:
        found = api.json(api.url(f"{user}/mailFolders/{urllib.parse.quote(name, safe='')}"))
    except GraphError as exc:
        if exc.code != 404:
            raise
        escaped = name.replace("'", "''")
        listed = api.json(
            api.url(f"{user}/mailFolders", {"$filter": f"displayName eq '{escaped}'"})
        )
        values = listed.get("value") or []
        if not values:
            raise InvalidInput(f"no folder {name!r} in the mailbox {mailbox}") from None
        found = values[0]
    return GraphFolder(
        str(found["id"]),
        str(found.get("displayName") or name),
        int(found.get("totalItemCount") or 0),
        utcnow(),
    )


def import_graph(
    store: Store,
    mailbox: str,
    folders: list[str],
    tokens: TokenSource,
    *,
    graph_url: str = GRAPH_URL,
    since: dt.date | None = None,
    progress: Progress | None = None,
    limits: MailLimits | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ImportReport:
    """Import what is new in ``folders`` (default the inbox) of ``mailbox``."""
    limits = limits or mail_limits(store.config)
    api = GraphApi(graph_url, tokens, sleep=sleep)
    found = [find_folder(api, mailbox, name) for name in folders or ["inbox"]]
    states = {f.id: _state_id(store, mailbox, f) for f in found}
    finished: dict[str, str] = {}  # folder id: delta link of a folder read to its end

    def on_chunk(session: Session, chunk: list[RawMessage]) -> None:
        marked = [item for item in chunk if item.page is not None]
        known = _known_ids(session, [item.page for item in marked if item.page is not None])
        for item in marked:
            assert item.page is not None
            state_id, message_id, link, is_delta = item.page
            state = session.get(GraphFolderState, state_id)
            assert state is not None
            if not item.quarantined and (state_id, message_id) not in known:
                known.add((state_id, message_id))
                session.add(GraphMessage(folder_state_id=state_id, message_id=message_id))
                state.held += 1
            if link is not None:  # the page's last message: the next run starts after it
                if is_delta:
                    state.delta_link, state.next_link = link, None
                else:
                    state.next_link = link
            state.updated_at = utcnow()

    label = f"graph://{mailbox}/" + ",".join(f.name for f in found)
    importer = MailImporter(store, label, limits, progress, on_chunk=on_chunk)
    lost: list[ConnectionLost] = []
    report = importer.run(_messages(store, api, mailbox, found, states, since, finished, lost))
    with store.writing() as session:
        for folder in found:
            state = session.get(GraphFolderState, states[folder.id])
            assert state is not None
            if folder.id in finished:
                state.delta_link, state.next_link = finished[folder.id], None
            state.server_count, state.counted_at = folder.total, folder.counted_at
            state.updated_at = utcnow()
    if lost:
        # What was fetched before the connection went is stored (above); say so.
        raise ConnectionLost(lost[0].reason, report.imported)
    return report


def _known_ids(
    session: Session, pages: list[tuple[int, str, str | None, bool]]
) -> set[tuple[int, str]]:
    """The (folder, message id) pairs the store already holds, of those given."""
    found: set[tuple[int, str]] = set()
    by_state: dict[int, list[str]] = {}
    for state_id, message_id, _link, _delta in pages:
        by_state.setdefault(state_id, []).append(message_id)
    for state_id, ids in by_state.items():
        for start in range(0, len(ids), 500):
            rows = session.scalars(
                select(GraphMessage.message_id).where(
                    GraphMessage.folder_state_id == state_id,
                    GraphMessage.message_id.in_(ids[start : start + 500]),
                )
            )
            found.update((state_id, message_id) for message_id in rows)
    return found


def _state_id(store: Store, mailbox: str, folder: GraphFolder) -> int:
    with store.writing() as session:
        state = session.scalars(
            select(GraphFolderState).where(
                GraphFolderState.mailbox == mailbox, GraphFolderState.folder_id == folder.id
            )
        ).one_or_none()
        if state is None:
            state = GraphFolderState(
                mailbox=mailbox,
                folder_id=folder.id,
                folder=folder.name,
                held=0,
                updated_at=utcnow(),
            )
            session.add(state)
            session.flush()
        state.folder = folder.name
        return state.id


def _start(
    store: Store,
    api: GraphApi,
    mailbox: str,
    folder: GraphFolder,
    state_id: int,
    since: dt.date | None,
) -> str:
    """Where the folder's read begins: the page a stopped run was on, the last delta
    link, or a new delta query."""
    with store.session() as session:
        state = session.get(GraphFolderState, state_id)
        assert state is not None
        if state.next_link:
            return state.next_link
        if state.delta_link:
            return state.delta_link
    query = {"$select": "id"}
    if since is not None:
        query["$filter"] = f"receivedDateTime ge {since.isoformat()}T00:00:00Z"
    user = "/users/" + urllib.parse.quote(mailbox, safe="@")
    return api.url(
        f"{user}/mailFolders/{urllib.parse.quote(folder.id, safe='')}/messages/delta", query
    )


def _messages(
    store: Store,
    api: GraphApi,
    mailbox: str,
    folders: list[GraphFolder],
    states: Mapping[str, int],
    since: dt.date | None,
    finished: dict[str, str],
    lost: list[ConnectionLost],
) -> Iterator[RawMessage]:
    """Each folder's new messages; on a lost connection it stops (recording why), so that
    what was fetched is still stored."""
    try:
        yield from _pages(store, api, mailbox, folders, states, since, finished)
    except ConnectionLost as exc:
        lost.append(exc)


def _pages(
    store: Store,
    api: GraphApi,
    mailbox: str,
    folders: list[GraphFolder],
    states: Mapping[str, int],
    since: dt.date | None,
    finished: dict[str, str],
) -> Iterator[RawMessage]:
    user = "/users/" + urllib.parse.quote(mailbox, safe="@")
    for folder in folders:
        state_id = states[folder.id]
        url: str | None = _start(store, api, mailbox, folder, state_id, since)
        source = f"graph://{mailbox}/{folder.name}"
        while url is not None:
            try:
                page = api.json(url)
            except GraphError as exc:
                if exc.code != 410:
                    raise
                # The delta token expired (Graph: resync required): read the folder again;
                # what is stored is recognised by its content.
                _forget(store, state_id)
                url = _start(store, api, mailbox, folder, state_id, since)
                continue
            link = page.get("@odata.nextLink")
            delta = page.get("@odata.deltaLink")
            yield from _page_messages(store, api, user, source, state_id, page, link, delta)
            if link:
                url = str(link)
            else:
                if delta:
                    finished[folder.id] = str(delta)
                url = None


def _page_messages(
    store: Store,
    api: GraphApi,
    user: str,
    source: str,
    state_id: int,
    page: dict[str, Any],
    link: Any,
    delta: Any,
) -> Iterator[RawMessage]:
    """The messages a delta page lists that are not held yet, fetched one by one; the last
    one carries the page's next (or delta) link, to be saved once it is stored."""
    listed = [
        str(item["id"])
        for item in page.get("value") or []
        if isinstance(item, dict) and "@removed" not in item and item.get("id")
    ]
    # A message already held from the folder (seen again because it was read or
    # flagged, or on a page a stopped run had begun) is not fetched again.
    with store.session() as session:
        held = _known_ids(session, [(state_id, m, None, False) for m in listed])
    # (A page with nothing to fetch moves nothing on: messages of earlier pages may
    # not be stored yet. A stopped run lists it again, which costs no fetch.)
    wanted = [m for m in dict.fromkeys(listed) if (state_id, m) not in held]
    for number, message_id in enumerate(wanted, start=1):
        raw = api.get(
            api.url(f"{user}/messages/{urllib.parse.quote(message_id, safe='')}/$value"),
            "message/rfc822, */*",
        )
        last = number == len(wanted)
        yield RawMessage(
            source,
            f"id {message_id}",
            raw,
            None,
            len(raw),
            page=(
                state_id,
                message_id,
                (str(link or delta) if last and (link or delta) else None),
                bool(last and delta and not link),
            ),
        )


def _forget(store: Store, state_id: int) -> None:
    with store.writing() as session:
        state = session.get(GraphFolderState, state_id)
        assert state is not None
        state.delta_link = state.next_link = None
        state.updated_at = utcnow()
