"""What a transport (SMTP, Genesys email, Genesys SMS) can say about one send.

The delivery stage needs three answers besides success, because "never twice" depends
on them: nothing was sent (retry later), it was refused for good (bounce or review),
or nobody knows (the request went out and the answer was lost: never resent blindly).
Reasons are codes and statuses only, never an address or a body.
"""
from __future__ import annotations


class SendRetryable(Exception):
    """Not sent: the server was unreachable, busy (4xx, 429, 503) or refused to talk."""

    def __init__(self, reason: str, retry_after: float | None = None, recipient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.recipient = recipient  # the recipient was refused for now (4xx at RCPT), not the server


class SendRejected(Exception):
    """Refused for good. `bounce`: the recipient was refused (a hard bounce)."""

    def __init__(self, reason: str, bounce: bool = False, status: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.bounce = bounce
        self.status = status


class SendUnconfirmed(Exception):
    """The request may have been delivered: the connection broke before the answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
