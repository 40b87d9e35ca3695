"""``hms login | logout | whoami``: the CLI's Airflow token (hms.client) and who the API says you are."""

from __future__ import annotations

import argparse
import getpass
import os
import sys

from hms import client
from hms.cli import emit_model
from hms.errors import BadInput


def register(sub: argparse._SubParsersAction) -> None:
    login = sub.add_parser("login", help="get an Airflow token for the HMS API and keep it (mode 0600)")
    login.add_argument("--api", default=os.environ.get(client.API_ENV),
                       help=f"Airflow's base URL, e.g. http://127.0.0.1:8080 (default: ${client.API_ENV})")
    login.add_argument("--username", default=None, help="Airflow user name (prompted if not given)")
    src = login.add_mutually_exclusive_group()
    src.add_argument("--password-stdin", action="store_true", help="read the password from stdin (scripts)")
    src.add_argument("--token-stdin", action="store_true",
                     help="store a token you already have (e.g. from POST /auth/token) instead of logging in")
    login.add_argument("--json", action="store_true")
    login.set_defaults(handler=cmd_login)
    logout = sub.add_parser("logout", help="forget the stored token")
    logout.set_defaults(handler=cmd_logout)
    who = sub.add_parser("whoami", help="who the HMS API (or, embedded, this machine) says you are, and your roles")
    who.add_argument("--json", action="store_true")
    who.set_defaults(handler=cmd_whoami)


def cmd_login(args: argparse.Namespace) -> int:
    from hms.api.models import WhoAmIOut

    if not args.api:
        raise BadInput(f"say where Airflow is: --api URL or ${client.API_ENV}", where="--api")
    api = args.api.rstrip("/")
    if args.token_stdin:
        creds = client.Credentials(api, sys.stdin.readline().strip())
    else:
        user = args.username or input("Airflow user name: ").strip()
        password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
        creds = client.login(api, user, password)
    me = client.Client(creds).get("/me", WhoAmIOut)  # the token works, and says who it is, before it is kept
    creds = client.Credentials(api, creds.token, me.principal.name)
    path = creds.save()
    me.lines.append(f"[login] token kept in {path} (mode 0600)")
    emit_model(args, me)
    return 0


def cmd_logout(args: argparse.Namespace) -> int:
    path = client.credentials_path()
    path.unlink(missing_ok=True)
    print(f"[login] forgot the token ({path})")
    return 0


def cmd_whoami(args: argparse.Namespace) -> int:
    from hms.api.models import WhoAmIOut

    c = client.active()
    if c is not None:
        emit_model(args, c.get("/me", WhoAmIOut))
        return 0
    from hms import actions, identity

    emit_model(args, actions.whoami(identity.current()))
    return 0
