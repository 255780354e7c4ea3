"""An operators file for tests: people with passwords, clients with tokens, made as
`callbill operators` makes them (adapters/operators.py)."""
from __future__ import annotations

from pathlib import Path

from adapters.operators import Accounts

PASSWORD = "correct horse battery"  # every test person's (12+ characters)


def operators_file(path: Path, people: dict[str, str], clients: dict[str, str]) -> dict[str, str]:
    """Write `path` with people {name: role} and clients {name: role}; the clients' tokens."""
    accounts = Accounts.load(path)
    for name, role in people.items():
        accounts.add(name, role, PASSWORD)
    tokens = {name: accounts.add_client(name, role) for name, role in clients.items()}
    accounts.save(path)
    return tokens
