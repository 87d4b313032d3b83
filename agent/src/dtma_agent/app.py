"""Builds the app: state, error handlers and one router per resource; nothing else."""

from __future__ import annotations

import os
import pwd
import tempfile
import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__, audit
from .auth import BearerAuth, BodyLimit
from .docker_service import DockerService
from .docker_watch import DockerWatch
from .errors import install_handlers
from .groups import RestartLimiter
from .executor import Executor
from .heartbeat import Heartbeat
from .prometheus import RequestMetrics
from .reconcile import Readiness
from .policy import PolicyContext, default_policy, load_policy
from .routes import diagnostics, exec as exec_route, health, lifecycle, mcp, metrics, status, tools
from .settings import Settings


def policy_context(settings: Settings, scratch: str) -> PolicyContext:
    """What the policy must know about this host: where scratch is, what is secret, who must not be killed."""
    return PolicyContext(scratch_dirs=tuple(dict.fromkeys(("/tmp", "/var/tmp", scratch))),
                         secret_paths=(str(settings.env_file),) if settings.env_file else (),
                         protected_pids=(os.getpid(),), agent_home=str(settings.dtma_home or "/opt/dtma"),
                         resolve_paths=True, cwd=scratch)


def exec_state(settings: Settings, state) -> None:
    """What running commands needs (policy, its context, the sandboxed executor), set on `state`: the app's, or
    the one `dtma-agent exec` builds."""
    scratch = str(settings.scratch_dir or tempfile.gettempdir())
    state.settings = settings
    state.policy = load_policy(str(settings.policy_file)) if settings.policy_file else default_policy()
    state.policy_context = policy_context(settings, scratch)
    state.executor = Executor(settings.sandbox_socket, settings.exec_max_concurrent, settings.exec_output_cap,
                              docker_upstream=docker_upstream(), runtime_dir=str(settings.runtime_dir),
                              filter_uids=sandbox_uids(settings.sandbox_user), journal_units=settings.journal_units)


def sandbox_uids(user: str):
    """Who may use a command's filtered Docker API socket: the sandbox user (and root); None when unknown here."""
    try:
        return {pwd.getpwnam(user).pw_uid, 0}
    except KeyError:
        return None


def docker_upstream() -> str | None:
    """The engine's socket, which commands' filtered Docker API proxies to; none when the engine is not local."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    return host[len("unix://"):] if host.startswith("unix://") else None


def create_app(settings: Settings, docker_service: DockerService | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await app.state.docker_watch.start()
        beat = None
        if settings.heartbeat_enabled:
            beat = Heartbeat(settings.api_base_url, settings.tokens["agent"], app.state.docker, settings.heartbeat_interval)
            beat.start()
        yield
        if beat:
            beat.stopped.set()
        await app.state.docker_watch.stop()

    app = FastAPI(title="DTMA agent", version=__version__, lifespan=lifespan,
                  description="Droplet Tool Management Agent: MCP-server containers through the Docker Engine API.")
    app.state.docker = docker_service or DockerService(readiness=Readiness(settings.settle_s))
    app.state.docker_watch = DockerWatch(docker_upstream(), app.state.docker.ping)
    app.state.boot_id = uuid.uuid4().hex
    app.state.started_monotonic = time.monotonic()
    exec_state(settings, app.state)
    if settings.log_dir:
        audit.open_file(settings.log_dir)
    app.state.restart_limiter = RestartLimiter(settings.restart_limit, settings.restart_window_s, settings.restart_cooldown_s)
    install_handlers(app)
    app.add_middleware(BodyLimit)                           # inner: reads the body only for an authenticated caller
    app.add_middleware(BearerAuth, tokens=settings.tokens)  # outer: the token first, before any body is read
    app.add_middleware(RequestMetrics)                      # outermost: times every request, 401s included
    app.state.metrics_registry = metrics.create_registry(app.state)
    # /health directly on the app: an included router costs ~15 µs more a request in this FastAPI, and /health is
    # the route monitors hit most
    app.router.routes.extend(health.router.routes)
    for router in (status.router, tools.router, mcp.router, diagnostics.router, exec_route.router, lifecycle.router,
                   metrics.router):
        app.include_router(router)
    return app
