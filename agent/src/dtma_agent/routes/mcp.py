from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from .. import groups
from .. import docker_state as ds
from ..errors import ApiError, error_response, ok
from ..schemas import RESOURCE_TEMPLATES, GroupDeploy
from .common import QueryBool, QueryFloat, QueryInt, log_query

router = APIRouter(prefix="/mcp", tags=["mcp"])


def _server(request: Request, name: str) -> dict:
    found = request.app.state.docker.find(name, kind=ds.KIND_MCP)
    if not found:
        raise ApiError(404, "server not found", f"no MCP server named {name!r} is managed by this agent")
    return found


@router.post("/groups", status_code=201, summary="Converge an MCP group to this payload; 201 only when every server "
             "is ready (running through the settle window and, over HTTP, answering MCP)")
def deploy_group(body: GroupDeploy, request: Request):
    result = groups.converge(request.app.state.docker, body)
    failures = [s for s in result["servers"] if s["outcome"] == "failed"]
    if not failures:
        return JSONResponse(ok(message=f"group {body.groupId}: every server is ready", data=result), status_code=201)
    message = "; ".join(f"{f['name']}: {f.get('message') or f.get('error')}" for f in failures)
    return error_response(failures[0].get("status", 502), "deployment failed", message, data=result)


@router.post("/validate", summary="What POST /mcp/groups would do with this payload, per server; changes nothing")
def validate_group(body: GroupDeploy, request: Request):
    steps = groups.plan(request.app.state.docker, body)
    return ok(valid=True, data={"groupId": body.groupId, "plan": [s.view() for s in steps],
                                "changes": sum(1 for s in steps if s.action != "unchanged")})


@router.delete("/groups/{groupId}", summary="Stop and remove every container of a group")
def delete_group(groupId: str, request: Request,
                 forceRemove: Annotated[QueryBool, Query(description="kill at once instead of a graceful stop")] = False,
                 gracefulTimeoutMs: Annotated[QueryInt, Query(ge=0, le=300000,
                                                              description="graceful stop time per container")] = 10000):
    result = groups.remove_group(request.app.state.docker, groupId, forceRemove, gracefulTimeoutMs)
    return ok(message=f"group {groupId} removed", data=result)


@router.get("/status", summary="Every managed MCP server: group, state, ports, health")
def mcp_status(request: Request,
               probe: Annotated[QueryBool, Query(description="also speak MCP to each HTTP server")] = False):
    servers = groups.mcp_servers(request.app.state.docker, do_probe=probe)
    return ok(mcp_servers=servers, count=len(servers))


@router.get("/health/{groupId}", summary="Container state and MCP probe of each server of a group")
def group_health(groupId: str, request: Request,
                 retryFor: Annotated[QueryFloat, Query(ge=0, le=30, description="seconds to retry refused connections")] = 0.0):
    servers = groups.mcp_servers(request.app.state.docker, groupId, do_probe=True, retry_for=retryFor)
    if not servers:
        raise ApiError(404, "group not found", f"no containers are labelled with group {groupId!r}")
    status = groups.collective_status(servers)
    return ok(groupId=groupId, collectiveStatus=status, data={"groupId": groupId, "collectiveStatus": status, "servers": servers})


@router.post("/servers/{name}/restart", summary="Restart one MCP server (rate limited)")
def restart_server(name: str, request: Request, timeout: Annotated[QueryInt, Query(ge=0, le=600)] = 10):
    server = _server(request, name)
    request.app.state.restart_limiter.acquire(name)
    after, _changed = request.app.state.docker.act(server, "restart", timeout)
    return ok(message=f"MCP server {name} restarted", data=after)


@router.post("/servers/{name}/{action}", summary="Start or stop one MCP server")
def server_action(name: str, action: Literal["start", "stop"], request: Request,
                  timeout: Annotated[QueryInt, Query(ge=0, le=600, description="seconds to wait for a graceful stop")] = 10):
    after, changed = request.app.state.docker.act(_server(request, name), action, timeout)
    return ok(message=f"MCP server {name}: {action} done", changed=changed, data=after)


@router.get("/servers/{name}/logs", summary="Recent log lines of an MCP server")
def server_logs(name: str, request: Request, query: tuple = Depends(log_query)):
    tail, since = query
    server = _server(request, name)
    lines = request.app.state.docker.logs(server, tail, since)
    return ok(data={"name": name, "group_id": server["group_id"], "lines": lines, "count": len(lines)})


@router.get("/templates", summary="Resource presets that resourceLimits may name")
def templates():
    return ok(data=RESOURCE_TEMPLATES)
