"""The operators file: who may use the review pages and API, and in which role.

One JSON file (CALLBILL_OPERATORS_FILE), written by `callbill operators …` and read by
every worker (re-read when it changes, so an account removed or a role changed holds at
the next request):

    {"operators": {"alice": {"role": "operator", "hash": "$argon2id$…", "notBefore": "…"}},
     "clients":   {"erp-sync": {"role": "viewer", "tokenSha256": "…"}}}

People sign in with a password, kept only as an argon2id hash; `notBefore` ends every
session that began earlier (`callbill operators revoke`, a new password). Machines use a
bearer token each, kept only as its SHA-256 (a random 256-bit token needs no slow hash).
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = ("viewer", "operator")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
_hasher = PasswordHasher()


@functools.cache
def _dummy() -> str:
    """Verified against when the name is unknown, so a wrong name costs what a wrong password does."""
    return _hasher.hash("not a password of anyone")


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role
    kind: Literal["operator", "client"]

    @property
    def can_act(self) -> bool:
        return self.role == "operator"

    @property
    def actor(self) -> str:
        """The name the audit trail records: a client is marked as one."""
        return self.name if self.kind == "operator" else f"client:{self.name}"


class AccountsError(ValueError):
    """The operators file or a command's arguments are not usable (the text says why)."""


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, data: dict[str, Any] | None = None) -> None:
        data = data or {}
        self.operators: dict[str, dict[str, Any]] = dict(data.get("operators") or {})
        self.clients: dict[str, dict[str, Any]] = dict(data.get("clients") or {})
        for where, entries in (("operators", self.operators), ("clients", self.clients)):
            for name, entry in entries.items():
                if not NAME.fullmatch(name) or not isinstance(entry, dict) or entry.get("role") not in ROLES:
                    raise AccountsError(f"{where}: an entry is not a name with a role viewer or operator")

    # --- reading -----------------------------------------------------------------------

    @classmethod
    def load(cls, path: Path) -> "Accounts":
        if not path.exists():
            return cls()
        try:
            return cls(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as e:
            raise AccountsError(f"{path} is not an operators file ({type(e).__name__})") from None

    def sign_in(self, name: str, password: str) -> Principal | None:
        entry = self.operators.get(name)
        try:
            _hasher.verify(entry["hash"] if entry else _dummy(), password)
        except (VerificationError, InvalidHashError):
            return None
        return Principal(name, entry["role"], "operator") if entry else None

    def operator(self, name: str, issued: datetime) -> Principal | None:
        """The operator of a session that began at `issued`, if the account still allows it."""
        entry = self.operators.get(name)
        if entry is None:
            return None
        not_before = entry.get("notBefore")
        if not_before and issued < datetime.fromisoformat(not_before):
            return None
        return Principal(name, entry["role"], "operator")

    def client(self, token: str) -> Principal | None:
        digest = token_digest(token)
        for name, entry in self.clients.items():
            if hmac.compare_digest(str(entry.get("tokenSha256", "")), digest):
                return Principal(name, entry["role"], "client")
        return None

    # --- changing (the `callbill operators` command) -------------------------------------

    def add(self, name: str, role: str, password: str) -> None:
        _check(name, role)
        if name in self.operators or name in self.clients:
            raise AccountsError(f"{name} exists already (callbill operators passwd, or remove first)")
        _strong(password)
        self.operators[name] = {"role": role, "hash": _hasher.hash(password), "notBefore": _now()}

    def passwd(self, name: str, password: str) -> None:
        if name not in self.operators:
            raise AccountsError(f"no operator {name}")
        _strong(password)
        self.operators[name].update(hash=_hasher.hash(password), notBefore=_now())

    def revoke(self, name: str) -> None:
        if name not in self.operators:
            raise AccountsError(f"no operator {name}")
        self.operators[name]["notBefore"] = _now()

    def remove(self, name: str) -> None:
        if self.operators.pop(name, None) is None and self.clients.pop(name, None) is None:
            raise AccountsError(f"no operator or client {name}")

    def add_client(self, name: str, role: str) -> str:
        """A new client token, returned once (only its digest is kept)."""
        _check(name, role)
        if name in self.operators:
            raise AccountsError(f"{name} is an operator; a client needs a name of its own")
        token = secrets.token_urlsafe(32)
        self.clients[name] = {"role": role, "tokenSha256": token_digest(token), "created": _now()}
        return token

    def save(self, path: Path) -> None:
        """Atomically, readable by its owner only: the hashes are secrets too."""
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"operators": self.operators, "clients": self.clients}, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)


class AccountsFile:
    """The file as a worker reads it: loaded again when its modification time changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._accounts = Accounts()

    def get(self) -> Accounts:
        if self.path is None:
            return self._accounts
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp != self._stamp:
            self._accounts = Accounts.load(self.path) if stamp else Accounts()
            self._stamp = stamp
        return self._accounts


def _check(name: str, role: str) -> None:
    if not NAME.fullmatch(name):
        raise AccountsError("a name is 1-100 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
    if role not in ROLES:
        raise AccountsError("the role is viewer (read the queue and traces) or operator (also resubmit, dismiss)")


def _strong(password: str) -> None:
    if len(password) < 12:
        raise AccountsError("a password has at least 12 characters")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()
