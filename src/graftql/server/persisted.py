"""Persisted operations: operations sent by hash, and the trusted-documents lock.

- **Automatic persisted queries** (APQ, Apollo's protocol). A client sends
  ``extensions: {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}`` without the query;
  when the gateway knows the hash it runs that document, else it answers the request error
  ``PersistedQueryNotFound`` and the client sends the query with the hash once, which the
  gateway checks (``sha256(query) == hash``) and keeps (a bounded LRU, documents up to 32 KiB).
- **Trusted documents.** A manifest file lists the operations a frontend may send; they can be
  sent by hash (``persistedQuery`` as above, or the ``documentId`` parameter of the
  GraphQL-over-HTTP persisted-documents proposal, ``"sha256:<hex>"`` or the bare id). With
  ``only_trusted: true`` nothing else runs — over HTTP (here) and over WebSocket (the schema's
  trusted-documents check, given ``trusted_hashes``) — and APQ cannot add to the list.

Manifest formats: Apollo's persisted query manifest (``{"format":
"apollo-persisted-query-manifest", "version": 1, "operations": [{"id", "body", ...}]}``) or a
plain ``{"<id>": "<document>"}`` map (GraphQL Code Generator's ``persisted-documents.json``,
Relay). Ids are kept as given; a document is also found by the sha256 of its text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from pathlib import Path
from typing import Any

import orjson
from graphql import GraphQLError

from graftql.config import PersistedOperationsConfig
from graftql.errors import ConfigError

__all__ = ["PersistedOperations", "sha256_hex"]

_MAX_REMEMBERED = 32 * 1024  # larger APQ documents are run but not kept


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PersistedOperations:
    def __init__(self, config: PersistedOperationsConfig) -> None:
        self.config = config
        self._manifest: dict[str, str] = _load(config.manifest) if config.manifest else {}
        # Every manifest document by the sha256 of its text too, so a client may send either.
        self._by_hash = {sha256_hex(body): body for body in self._manifest.values()}
        self._apq: OrderedDict[str, str] = OrderedDict()

    @property
    def trusted_hashes(self) -> frozenset[str] | None:
        """The sha256 of every document allowed to run, when only trusted documents may."""
        return frozenset(self._by_hash) if self.config.only_trusted else None

    def resolve(
        self, query: str | None, extensions: dict[str, Any] | None, document_id: str | None
    ) -> str | None:
        """The document to run (``query`` unless a hash or id names another), or raise a
        ``GraphQLError`` that is the request's error."""
        persisted = (extensions or {}).get("persistedQuery")
        if document_id is not None:
            return self._by_id(document_id, query)
        if persisted is None:
            if query is not None and self.config.only_trusted:
                if sha256_hex(query) not in self._by_hash:
                    raise _not_trusted()
            return query
        if not isinstance(persisted, dict) or persisted.get("version") != 1:
            raise _error("Unsupported persisted query version", "PERSISTED_QUERY_NOT_SUPPORTED")
        digest = persisted.get("sha256Hash")
        if not isinstance(digest, str) or not digest:
            raise _error("persistedQuery.sha256Hash must be a string", "BAD_REQUEST")
        digest = digest.lower()
        if query is not None:
            if sha256_hex(query) != digest:
                raise _error("provided sha does not match query", "PERSISTED_QUERY_HASH_MISMATCH")
            if self.config.only_trusted and digest not in self._by_hash:
                raise _not_trusted()
            self._remember(digest, query)
            return query
        known = self._by_hash.get(digest) or self._manifest.get(digest)
        if known is not None:
            return known
        if self.config.only_trusted:
            raise _not_trusted()
        if not self.config.apq:
            raise _error("PersistedQueryNotSupported", "PERSISTED_QUERY_NOT_SUPPORTED")
        remembered = self._apq.get(digest)
        if remembered is None:
            # The exact message Apollo clients look for before they send the text.
            raise _error("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND")
        self._apq.move_to_end(digest)
        return remembered

    def _by_id(self, document_id: str, query: str | None) -> str:
        if query is not None:
            raise _error("send either 'documentId' or 'query', not both", "BAD_REQUEST")
        bare = document_id.removeprefix("sha256:")
        known = self._manifest.get(document_id) or self._manifest.get(bare)
        known = known or self._by_hash.get(bare.lower())
        if known is None:
            raise _error(f"no persisted document {document_id!r}", "PERSISTED_QUERY_NOT_FOUND")
        return known

    def _remember(self, digest: str, query: str) -> None:
        if not self.config.apq or self.config.only_trusted or self.config.apq_cache_size == 0:
            return
        if len(query) > _MAX_REMEMBERED:
            return
        self._apq[digest] = query
        self._apq.move_to_end(digest)
        while len(self._apq) > self.config.apq_cache_size:
            self._apq.popitem(last=False)


def _error(message: str, code: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": code})


def _not_trusted() -> GraphQLError:
    return _error(
        "only trusted documents may run here: send the operation's id from the manifest",
        "OPERATION_NOT_TRUSTED",
    )


def _load(path: str) -> dict[str, str]:
    key = "server.persisted_operations.manifest"
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise ConfigError.at(key, f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError.at(key, f"{path}: cannot read: {exc.strerror}") from None
    except orjson.JSONDecodeError as exc:
        raise ConfigError.at(key, f"{path}: not valid JSON: {exc}") from None
    if isinstance(data, dict) and data.get("format") == "apollo-persisted-query-manifest":
        operations = data.get("operations")
        if not isinstance(operations, list):
            raise ConfigError.at(key, f"{path}: 'operations' must be a list")
        entries = [
            (op.get("id"), op.get("body")) if isinstance(op, dict) else (None, None)
            for op in operations
        ]
    elif isinstance(data, dict):
        entries = list(data.items())
    else:
        raise ConfigError.at(
            key, f"{path}: expected an apollo-persisted-query-manifest or an id -> document map"
        )
    manifest: dict[str, str] = {}
    for index, (op_id, body) in enumerate(entries):
        if not isinstance(op_id, str) or not op_id or not isinstance(body, str) or not body:
            raise ConfigError.at(
                key, f"{path}: entry {index} needs a non-empty string id and document"
            )
        manifest[op_id] = body
    if not manifest:
        raise ConfigError.at(key, f"{path}: the manifest lists no operations")
    return manifest
