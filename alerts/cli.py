"""Sub-commands of this package for the ``finmon`` CLI."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Annotated

import typer

from alerts.receiver import ReceivedAlert, ReceiverConfig, WebhookReceiver
from alerts.signing import DEFAULT_TOLERANCE_SEC
from monitor.errors import ConfigError

TEMPLATE_SUFFIX = ".tmpl"
VALUES_FILE = "values.env"


def _print_alert(alert: ReceivedAlert) -> None:
    mark = "signed" if alert.signed else "unsigned"
    typer.echo(f"{alert.line()} [{mark} {alert.idempotency_key} {alert.path}]")


def read_secret(value: str | None, path: Path | None, option: str) -> str | None:
    """The secret from ``path`` (its first line) or ``value``; ConfigError when both are given
    or the file is unreadable or empty."""
    if path is None:
        return value or None
    if value:
        raise ConfigError(option, "is given twice (value and file)", "keep only one of them")
    try:
        secret = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{option}-file", f"cannot read {path} ({exc})", "fix the path") from exc
    if not secret:
        raise ConfigError(f"{option}-file", f"{path} is empty", "write the secret in it")
    return secret


def _warn_if_on_command_line(ctx: typer.Context, name: str, option: str) -> None:
    source = ctx.get_parameter_source(name)  # typer may carry its own click: compare by name
    if source is not None and source.name == "COMMANDLINE":
        typer.echo(
            f"warning: {option} is visible to every user in `ps`; set its environment variable "
            f"or pass {option}-file instead",
            err=True,
        )


def webhook_receiver(
    ctx: typer.Context,
    *,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on (0: a free one).")] = 9110,
    secret: Annotated[
        str | None,
        typer.Option(
            envvar="FINMON_ALERTS__WEBHOOK_SECRET",
            show_envvar=True,
            help="HMAC secret; when set, unsigned or badly signed requests get 401. Prefer the "
            "environment variable or --secret-file: a command-line value shows in `ps`.",
        ),
    ] = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            envvar="FINMON_RECEIVER_SECRET_FILE",
            show_envvar=True,
            help="Read the HMAC secret from this file (first line).",
        ),
    ] = None,
    bearer_token: Annotated[
        str | None,
        typer.Option(
            envvar="FINMON_RECEIVER_BEARER_TOKEN",
            help="Also accept unsigned posts carrying this bearer token (Alertmanager).",
        ),
    ] = None,
    bearer_token_file: Annotated[
        Path | None,
        typer.Option(
            envvar="FINMON_RECEIVER_BEARER_TOKEN_FILE",
            help="Read the bearer token from this file (first line).",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Append each new alert as one JSON line to this file.")
    ] = None,
    tolerance_sec: Annotated[
        float, typer.Option(help="Reject signatures older than this (replays).")
    ] = DEFAULT_TOLERANCE_SEC,
) -> None:
    """Receive FinMon or Alertmanager webhooks: verify, drop duplicates, print and store.

    The secret comes from FINMON_ALERTS__WEBHOOK_SECRET or --secret-file (not --secret, which
    other users can read in `ps`).
    """
    _warn_if_on_command_line(ctx, "secret", "--secret")
    _warn_if_on_command_line(ctx, "bearer_token", "--bearer-token")
    try:
        secret = read_secret(secret, secret_file, "--secret")
        token = read_secret(bearer_token, bearer_token_file, "--bearer-token")
    except ConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    config = ReceiverConfig(
        secret=secret, bearer_token=token, out_path=out, tolerance_sec=tolerance_sec
    )
    receiver = WebhookReceiver(host, port, config=config, on_alert=_print_alert)
    receiver.start()
    auth = "signature required" if secret else "signatures not checked (no secret)"
    typer.echo(f"listening on {receiver.url} ({auth}); Ctrl-C to stop", err=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()


def read_values(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise ConfigError(f"{path}:{number}", "is not KEY=VALUE", "fix or remove the line")
        values[key.strip()] = value.strip()
    return values


def render_deploy(src: Path, out: Path, overrides: Mapping[str, str] | None = None) -> list[Path]:
    """Copy the ``deploy/`` tree to ``out``, filling ``*.tmpl`` files from ``values.env``.

    ``RULES_DIR`` defaults to the rendered ``prometheus/rules``. Returns the rendered files.
    Raises ConfigError naming a placeholder that has no value.
    """
    values = {"RULES_DIR": str((out / "prometheus" / "rules").resolve())}
    values |= read_values(src / VALUES_FILE) | dict(overrides or {})
    rendered: list[Path] = []
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        target = out / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix != TEMPLATE_SUFFIX:
            shutil.copyfile(path, target)
            continue
        target = target.with_suffix("")
        try:
            target.write_text(Template(path.read_text("utf-8")).substitute(values), "utf-8")
        except KeyError as exc:
            raise ConfigError(
                str(exc.args[0]),
                f"no value for ${{{exc.args[0]}}} in {path}",
                "add it to values.env or pass --set KEY=VALUE",
            ) from exc
        rendered.append(target)
    return rendered


def deploy_render(
    *,
    out: Annotated[Path, typer.Option(help="Directory to write the rendered configs to.")],
    src: Annotated[Path, typer.Option(help="The deploy/ directory.")] = Path("deploy"),
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE overriding deploy/values.env (repeatable)."),
    ] = None,
) -> None:
    """Render the Prometheus and Alertmanager configs (``*.tmpl``) for one deployment."""
    overrides = dict(item.split("=", 1) for item in set_ or [] if "=" in item)
    for path in render_deploy(src, out, overrides):
        typer.echo(str(path))


def register(app: typer.Typer) -> None:
    """Add this package's commands to ``app``."""
    app.command("webhook-receiver")(webhook_receiver)
    app.command("deploy-render")(deploy_render)
