"""``conveyor api`` (serve the HTTP API) and ``conveyor keys`` (manage its API keys)."""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from conveyor.cli.common import DATE, JSON_OPTION, console, get_app, print_json, utc_time
from conveyor.cli.tables import Col, fitted
from conveyor.errors import ConfigurationError

if TYPE_CHECKING:
    from conveyor.services.apikeys import KeyInfo
    from conveyor.store.repository import JobStore

keys_cli = typer.Typer(help="Create, list and revoke HTTP API keys.", no_args_is_help=True)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or address) only listens on the loopback interface."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except (OSError, ValueError):
            return False


def port_free(host: str, port: int) -> bool:
    """Whether ``host:port`` can be bound now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return False
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError:
            return False
    return True


def api(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    port: int = typer.Option(8000, "--port", min=1, max=65535),
    auth: str = typer.Option("on", "--auth", help="on, or off (loopback binds only)."),
    log_level: str = typer.Option("warning", "--log-level"),
) -> None:
    """Serve the HTTP API (FastAPI on uvicorn)."""
    if auth not in ("on", "off"):
        raise typer.BadParameter("must be on or off", param_hint="'--auth'")
    if auth == "off" and not is_loopback(host):
        raise ConfigurationError(
            f"--auth off is only allowed on a loopback address (got --host {host}); "
            "create a key with `conveyor keys create --tenant T --scopes submit,read`"
        )
    if not port_free(host, port):
        raise ConfigurationError(
            f"port {port} on {host} is in use (a running `conveyor up` serves the API there); "
            "choose another with --port"
        )
    import uvicorn

    from conveyor.api import create_app

    app = get_app()
    from conveyor.broker.outage import wait_until_reachable

    wait_until_reachable(
        app.broker_url,
        timeout_s=app.settings.broker_connect_timeout_s,
        wait_s=app.settings.broker_wait_s,
    )
    asgi = create_app(app, auth=auth == "on")
    console.print(f"Conveyor API on http://{host}:{port} (auth {auth}); docs at /docs")
    uvicorn.run(asgi, host=host, port=port, log_level=log_level, access_log=False)


def _key_store() -> JobStore:
    """The job store, migrated (API keys live in its database)."""
    from conveyor.store import open_store

    store = open_store(get_app().settings)
    store.upgrade()
    return store


@keys_cli.command("create")
def keys_create(
    tenant: str = typer.Option(..., "--tenant", help="The tenant the key acts for."),
    scopes: str = typer.Option("submit,read", "--scopes", help="submit, read, admin."),
    name: str = typer.Option("", "--name", help="A label for the key."),
    queues: list[str] = typer.Option(
        [],
        "--queue",
        help="A queue the key may name besides each job type's own (repeat for more).",
    ),
    max_priority: int = typer.Option(
        7, "--max-priority", min=0, max=10, help="The highest priority the key may ask for."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Create a key; it is printed once and only its hash is stored."""
    from conveyor.api.submitpolicy import check_key_queues
    from conveyor.services import apikeys

    allowed = check_key_queues(get_app(), queues)
    new = apikeys.create_key(
        _key_store().engine,
        tenant,
        scopes.split(","),
        name,
        queues=allowed,
        max_priority=max_priority,
    )
    if as_json:
        print_json({"key": new.secret, **new.info.__dict__})
        return
    console.print(f"[bold]{new.secret}[/]")
    console.print(
        f"id {new.info.id}, tenant {new.info.tenant}, scopes {','.join(new.info.scopes)}, "
        f"queues: {_queues(new.info)}, priorities up to {new.info.max_priority}. "
        "Store it now: it is not shown again."
    )


def _queues(key: KeyInfo) -> str:
    """What a key may name as queue, for tables and messages."""
    extra = ",".join(key.queues or ())
    return f"own+{extra}" if extra else "own"


@keys_cli.command("list")
def keys_list(
    tenant: str | None = typer.Option(None, "--tenant"), as_json: bool = JSON_OPTION
) -> None:
    """List keys (never their secrets)."""
    from conveyor.services import apikeys

    found = apikeys.list_keys(_key_store().engine, tenant)
    if as_json:
        print_json([k.__dict__ for k in found])
        return
    table = keys_table(found, console.width)
    console.print(table)


def keys_table(found: list[KeyInfo], width: int) -> Table:
    """``keys list`` as a table that fits ``width``: creation date, last use or revocation."""
    columns = [
        Col("id"),
        Col("tenant"),
        Col("created", drop=2),
        Col("last used (UTC)", drop=1),
        Col("scopes", drop=3),
        Col("queues", drop=4),
        Col("max prio", drop=6, justify="right"),
        Col("name", drop=5, fold=True),
    ]
    rows = []
    for key in found:
        used = utc_time(key.last_used_at, DATE) if key.last_used_at else "never"
        if key.revoked_at:  # what matters most about a revoked key
            used = f"revoked {utc_time(key.revoked_at, '%Y-%m-%d')}"
        created = utc_time(key.created_at, "%Y-%m-%d")
        rows.append(
            [
                key.id,
                key.tenant or "",
                created,
                used,
                ",".join(key.scopes),
                _queues(key),
                str(key.max_priority),
                key.name,
            ]
        )
    return fitted(columns, rows, width)


@keys_cli.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (or the key).")) -> None:
    """Revoke a key (API processes stop accepting it within CONVEYOR_API_KEY_CACHE_S)."""
    from conveyor.services import apikeys
    from conveyor.store import open_store

    store = open_store(get_app().settings)
    info = apikeys.revoke_key(store.engine, key_id)
    console.print(f"revoked {info.id} (tenant {info.tenant})")


def register(cli: typer.Typer) -> None:
    """Add ``api`` and ``keys`` to ``cli``."""
    cli.command()(api)
    cli.add_typer(keys_cli, name="keys")
