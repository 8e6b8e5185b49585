"""Sub-commands of this package for the ``finmon`` CLI."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated

import typer

from alerts.receiver import ReceivedAlert, ReceiverConfig, WebhookReceiver
from alerts.signing import DEFAULT_TOLERANCE_SEC


def _print_alert(alert: ReceivedAlert) -> None:
    mark = "signed" if alert.signed else "unsigned"
    typer.echo(f"{alert.line()} [{mark} {alert.idempotency_key} {alert.path}]")


def webhook_receiver(
    *,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 9110,
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="FINMON_ALERTS__WEBHOOK_SECRET",
            show_envvar=True,
            help="HMAC secret; when set, unsigned or badly signed requests get 401.",
        ),
    ] = None,
    bearer_token: Annotated[
        str | None,
        typer.Option(
            envvar="FINMON_RECEIVER_BEARER_TOKEN",
            help="Also accept unsigned posts carrying this bearer token (Alertmanager).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Append each new alert as one JSON line to this file.")
    ] = None,
    tolerance_sec: Annotated[
        float, typer.Option(help="Reject signatures older than this (replays).")
    ] = DEFAULT_TOLERANCE_SEC,
) -> None:
    """Receive FinMon or Alertmanager webhooks: verify, drop duplicates, print and store."""
    config = ReceiverConfig(
        secret=secret or None,
        bearer_token=bearer_token or None,
        out_path=out,
        tolerance_sec=tolerance_sec,
    )
    receiver = WebhookReceiver(host, port, config=config, on_alert=_print_alert)
    receiver.start()
    auth = "signature required" if secret else "signatures not checked (no --secret)"
    typer.echo(f"listening on {receiver.url} ({auth}); Ctrl-C to stop", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("webhook-receiver")(webhook_receiver)
