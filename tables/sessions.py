"""Operators' sessions, whole on every worker, from the compacted `callbill.sessions` topic.

A session is made where the operator signs in and must hold on whichever worker serves the
next page, so it lives on a topic every worker follows (tables/compacted.py), not in one
worker's memory. The key is the SHA-256 of the session id: the topic never holds what the
cookie holds. Signing out writes a tombstone, which ends the session on every worker.
"""
from __future__ import annotations

import hashlib

from schemas.events import OperatorSession
from tables.compacted import ModelView


def session_key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


class Sessions(ModelView):
    name = "sessions"
    topic = "callbill.sessions"
    model = OperatorSession
    entries: dict[str, OperatorSession]

    def get(self, session_id: str) -> OperatorSession | None:
        return self.entries.get(session_key(session_id))
