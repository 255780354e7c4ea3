"""`callbill operators add|passwd|remove|revoke|token|list`: the operators file.

    callbill operators add alice --role operator        # asks for the password twice
    echo "$PW" | callbill operators add bob --role viewer --password-stdin
    callbill operators passwd alice                     # also ends alice's sessions
    callbill operators revoke alice                     # ends every session alice has now
    callbill operators token erp-sync --role viewer     # prints a client token, once
    callbill operators remove bob

Edits CALLBILL_OPERATORS_FILE (or --file) in place, under a lock; running workers read
the change at their next request. Passwords are kept only as argon2id hashes, tokens
only as their SHA-256.
"""
from __future__ import annotations

import argparse
import fcntl
import getpass
import sys
from pathlib import Path

from adapters.operators import ROLES, Accounts, AccountsError
from runtime.settings import get_settings


def _password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (12 characters or more): ")
    if getpass.getpass("Again: ") != first:
        raise AccountsError("the two passwords differ")
    return first


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="callbill operators")
    p.add_argument("--file", type=Path, default=None, help="the operators file (default CALLBILL_OPERATORS_FILE)")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("add", "passwd"):
        c = sub.add_parser(name)
        c.add_argument("name")
        if name == "add":
            c.add_argument("--role", required=True, choices=ROLES)
        c.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    for name in ("remove", "revoke"):
        sub.add_parser(name).add_argument("name")
    t = sub.add_parser("token")
    t.add_argument("name")
    t.add_argument("--role", required=True, choices=ROLES)
    t.add_argument("--replace", action="store_true", help="a new token for an existing client (the old one stops)")
    sub.add_parser("list")
    args = p.parse_args(argv)
    path = args.file or get_settings().operators_file
    if path is None:
        print("callbill operators: set CALLBILL_OPERATORS_FILE or give --file", file=sys.stderr)
        return 2
    try:
        with open(path.with_name(f".{path.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two edits at once must not lose one
            accounts = Accounts.load(path)
            if args.cmd == "list":
                for name, e in sorted(accounts.operators.items()):
                    print(f"operator {name:30} {e['role']:9} sessions valid from {e.get('notBefore', '-')}")
                for name, e in sorted(accounts.clients.items()):
                    print(f"client   {name:30} {e['role']:9} token made {e.get('created', '-')}")
                return 0
            if args.cmd == "add":
                accounts.add(args.name, args.role, _password(args.password_stdin))
            elif args.cmd == "passwd":
                accounts.passwd(args.name, _password(args.password_stdin))
            elif args.cmd == "revoke":
                accounts.revoke(args.name)
            elif args.cmd == "remove":
                accounts.remove(args.name)
            elif args.cmd == "token":
                if args.name in accounts.clients and not args.replace:
                    raise AccountsError(f"client {args.name} exists already (--replace for a new token)")
                token = accounts.add_client(args.name, args.role)
            accounts.save(path)
    except AccountsError as e:
        print(f"callbill operators: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"callbill operators: cannot write {path} ({type(e).__name__})", file=sys.stderr)
        return 1
    if args.cmd == "token":
        print(token)  # shown once: only its digest is kept
    else:
        print(f"{args.cmd} {args.name}: done")
    return 0
