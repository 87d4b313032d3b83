"""Builds the app: state, error handlers and one router per resource; nothing else."""

from __future__ import annotations

import time
import uuid
from contextlib import asynccontextmanager

from fastapi import FastAPI

from . import __version__
from .auth import BearerAuth
from .docker_state import DockerGateway
from .errors import install_handlers
from .groups import RestartLimiter
from .heartbeat import Heartbeat
from .routes import diagnostics, health, lifecycle, mcp, status, tools
from .settings import Settings


def create_app(settings: Settings, gateway: DockerGateway | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        beat = None
        if settings.heartbeat_enabled:
            beat = Heartbeat(settings.api_base_url, settings.tokens["agent"], app.state.gateway, settings.heartbeat_interval)
            beat.start()
        yield
        if beat:
            beat.stopped.set()

    app = FastAPI(title="DTMA agent", version=__version__, lifespan=lifespan,
                  description="Droplet Tool Management Agent: MCP-server containers through the Docker Engine API.")
    app.state.settings = settings
    app.state.gateway = gateway or DockerGateway()
    app.state.boot_id = uuid.uuid4().hex
    app.state.started_monotonic = time.monotonic()
    app.state.restart_limiter = RestartLimiter(settings.restart_limit, settings.restart_window_s, settings.restart_cooldown_s)
    install_handlers(app)
    app.add_middleware(BearerAuth, tokens=settings.tokens)
    for router in (health.router, status.router, tools.router, mcp.router, diagnostics.router, lifecycle.router):
        app.include_router(router)
    return app
