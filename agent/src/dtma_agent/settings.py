"""Agent configuration from the environment and an optional env file (systemd EnvironmentFile format)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MIN_TOKEN_LENGTH = 24
# Placeholders seen in copy-pasted configs; a token containing one is refused whatever its length.
_PLACEHOLDERS = ("changeme", "change-me", "replace-me", "your-token", "example", "secret-token", "xxxxxxxx")

TRUE_VALUES = ("1", "true", "yes", "on")


class SettingsError(ValueError):
    """Configuration the agent refuses to start with; the message is one line for the operator."""


def read_env_file(path: str | Path) -> dict[str, str]:
    """Parse KEY=VALUE lines (comments, blank lines, `export`, single/double quotes) like systemd does."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError(f"cannot read env file {path}: {exc.strerror}") from None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            raise SettingsError(f"env file {path} line {number}: expected KEY=VALUE")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def check_token(name: str, token: str) -> None:
    if len(token) < MIN_TOKEN_LENGTH:
        raise SettingsError(f"{name} is too short ({len(token)} characters); use at least {MIN_TOKEN_LENGTH}, e.g. `openssl rand -hex 32`")
    lowered = token.lower()
    if len(set(token)) < 8 or any(p in lowered for p in _PLACEHOLDERS):
        raise SettingsError(f"{name} looks like a placeholder or has too little variety; generate one, e.g. `openssl rand -hex 32`")


@dataclass(frozen=True)
class Settings:
    # token id -> token; the id (never the token) is what logs and the audit trail name
    tokens: dict[str, str] = field(repr=False)
    host: str = "0.0.0.0"
    port: int = 30000
    api_base_url: str | None = None
    offline_mode: bool = False
    heartbeat_interval: float = 60.0
    dtma_home: Path | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    service_unit: str = "dtma"
    log_dir: Path | None = None
    policy_file: Path | None = None
    scratch_dir: Path | None = None
    env_file: Path | None = None
    # MCP server restarts: at most `restart_limit` per `restart_window_s`, `restart_cooldown_s` apart
    restart_limit: int = 3
    restart_window_s: float = 300.0
    restart_cooldown_s: float = 30.0
    exec_max_concurrent: int = 8
    exec_output_cap: int = 1024 * 1024
    # the root launcher of the exec sandbox, and where the agent puts each command's filtered Docker API socket
    sandbox_socket: str = "/run/dtma-sandbox.sock"
    sandbox_user: str = "dtma-exec"
    journal_units: tuple = ("dtma", "dtma-sandbox", "docker", "containerd", "ssh", "sshd")
    runtime_dir: Path = Path("/run/dtma")
    # a started container counts as deployed after running this long without a restart
    settle_s: float = 3.0

    @property
    def heartbeat_enabled(self) -> bool:
        return bool(self.api_base_url) and not self.offline_mode

    @classmethod
    def load(cls, environ: dict[str, str] | None = None, env_file: str | None = None,
             host: str | None = None, port: int | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        if env_file:
            env.update(read_env_file(env_file))  # the file named on the command line wins
        token = env.get("DTMA_BEARER_TOKEN", "")
        if not token:
            raise SettingsError("DTMA_BEARER_TOKEN is not set; the agent never runs without authentication")
        check_token("DTMA_BEARER_TOKEN", token)
        tokens = {"agent": token}
        api_key = env.get("BACKEND_TO_DTMA_API_KEY", "")
        if api_key:
            check_token("BACKEND_TO_DTMA_API_KEY", api_key)
            tokens["backend"] = api_key

        def number(name: str, default: float, kind=float):
            raw = env.get(name, "")
            try:
                return kind(raw) if raw else default
            except ValueError:
                raise SettingsError(f"{name} must be a number, got {raw!r}") from None

        port = port if port is not None else number("DTMA_PORT", 30000, int)
        if not 1 <= port <= 65535:
            raise SettingsError(f"port must be 1..65535, got {port}")
        interval = number("DTMA_HEARTBEAT_INTERVAL", 60.0)
        if interval <= 0:
            raise SettingsError("DTMA_HEARTBEAT_INTERVAL must be positive")

        def bounded(name: str, default: float, most: float) -> float:
            value = number(name, default)
            if not 0 <= value <= most:
                raise SettingsError(f"{name} must be between 0 and {most:g} seconds, got {value:g}")
            return value

        def path(name: str) -> Path | None:
            return Path(env[name]) if env.get(name) else None

        tls_cert, tls_key = env.get("DTMA_TLS_CERT") or None, env.get("DTMA_TLS_KEY") or None
        if bool(tls_cert) != bool(tls_key):
            raise SettingsError("DTMA_TLS_CERT and DTMA_TLS_KEY must be set together")
        return cls(
            tokens=tokens,
            host=host or env.get("DTMA_HOST") or "0.0.0.0",
            port=port,
            api_base_url=(env.get("AGENTOPIA_API_BASE_URL") or "").rstrip("/") or None,
            offline_mode=env.get("OFFLINE_MODE", "").strip().lower() in TRUE_VALUES,
            heartbeat_interval=interval,
            dtma_home=path("DTMA_HOME"),
            tls_cert=tls_cert,
            tls_key=tls_key,
            service_unit=env.get("DTMA_SERVICE_UNIT") or "dtma",
            log_dir=path("DTMA_LOG_DIR"),
            policy_file=path("DTMA_POLICY_FILE"),
            scratch_dir=path("DTMA_SCRATCH_DIR"),
            env_file=Path(env_file) if env_file else None,
            restart_limit=number("DTMA_MCP_RESTART_LIMIT", 3, int),
            restart_window_s=number("DTMA_MCP_RESTART_WINDOW_S", 300.0),
            restart_cooldown_s=number("DTMA_MCP_RESTART_COOLDOWN_S", 30.0),
            exec_max_concurrent=number("DTMA_EXEC_MAX_CONCURRENT", 8, int),
            exec_output_cap=number("DTMA_EXEC_OUTPUT_CAP", 1024 * 1024, int),
            sandbox_socket=env.get("DTMA_SANDBOX_SOCKET") or "/run/dtma-sandbox.sock",
            sandbox_user=env.get("DTMA_SANDBOX_USER") or "dtma-exec",
            journal_units=tuple(u.strip() for u in env["DTMA_JOURNAL_UNITS"].split(",") if u.strip())
            if env.get("DTMA_JOURNAL_UNITS") else cls.journal_units,
            runtime_dir=path("DTMA_RUNTIME_DIR") or Path("/run/dtma"),
            settle_s=bounded("DTMA_SETTLE_S", 3.0, 60),
        )
