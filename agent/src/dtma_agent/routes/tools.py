from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from .. import containers, reconcile
from .. import docker_state as ds
from ..create_config import Scope
from ..errors import ApiError, ok
from ..schemas import ToolCreate
from .common import QueryBool, QueryInt, log_query

router = APIRouter(prefix="/tools", tags=["tools"])


def tool_data(view: dict) -> dict:
    # name: the one name every object has in the modules' results; instance_name_on_toolbox: the predecessor's key
    return {"container_id": view["container_id"], "name": view["name"], "instance_name_on_toolbox": view["name"],
            "account_tool_instance_id": view["account_tool_instance_id"], "image": view["image"],
            "ports": view["ports"], "state": view["state"], "status": view["status"], "config_hash": view["config_hash"]}


def _tool(request: Request, name: str) -> dict:
    found = request.app.state.docker.find(name, kind=ds.KIND_TOOL)
    if not found:
        raise ApiError(404, "tool not found", f"no tool instance named {name!r} is managed by this agent")
    return found


def _desired(svc, body: ToolCreate) -> reconcile.Desired:
    """The tool exactly as deploying it would create it (400 when the override is unsafe, 422 for an image that
    pullPolicy never cannot get)."""
    labels = {ds.MANAGED_BY: ds.MANAGED_VALUE, ds.KIND: ds.KIND_TOOL, ds.INSTANCE: body.instanceNameOnToolbox,
              ds.ACCOUNT_TOOL: body.accountToolInstanceId}
    scope = Scope(volume_prefix=f"agentopia-tool-{body.instanceNameOnToolbox}-")  # no network but the default ones
    config = containers.build_config(body.dockerImageUrl, labels, override=body.baseConfigOverrideJson, scope=scope)
    # a tool's host ports can only come from its override
    want = reconcile.Desired(body.instanceNameOnToolbox, ds.KIND_TOOL, config, body.dockerImageUrl,
                             svc.image_id(body.dockerImageUrl), pull_policy=body.pullPolicy, auth=body.registryAuth,
                             ports_field="baseConfigOverrideJson.HostConfig.PortBindings")
    reconcile.require_local(want)
    return want


def _plan(svc, body: ToolCreate, pull: bool = False) -> reconcile.Step:
    """The tool's step; with `pull` (an apply, not a validate) an image with pullPolicy always is pulled first and
    the plan is made with it."""
    if pull and body.pullPolicy == "always":
        reconcile.pull_first(svc.api, [_desired(svc, body)])
    return svc.plan(_desired(svc, body), settle_s=body.settleSeconds)


def _apply(svc, step: reconcile.Step, body: ToolCreate) -> dict:
    """Apply a tool's step under its lock; a failure is the error response, with the outcome in `data`."""
    result = svc.apply(step, svc.readiness_for(body.settleSeconds, None))
    if result["outcome"] == "failed":
        extra = {"field": result["field"]} if "field" in result else {}
        raise ApiError(result["status"], result["error"], result["message"], data=result, **extra)
    return result


@router.post("", status_code=201, summary="Deploy a new tool instance; 201 once it is ready (409 when its name or a "
                                          "host port is taken)")
def deploy_tool(body: ToolCreate, request: Request):
    svc, name = request.app.state.docker, body.instanceNameOnToolbox
    with svc.lock(f"tool:{name}"):
        step = _plan(svc, body, pull=True)
        if step.current is not None and not step.current.parked:
            raise ApiError(409, "name conflict", f"instanceNameOnToolbox: a container named {name!r} already exists "
                           f"({step.reason}); PUT /tools/{name} converges an existing tool", field="instanceNameOnToolbox")
        _apply(svc, step, body)
    return JSONResponse(ok(message=f"tool {name} deployed", data=tool_data(_tool(request, name))), status_code=201)


@router.put("/{name}", summary="Converge a tool instance to this body: create, recreate (the old container is kept "
                               "aside until the new one is ready), start, or nothing")
def converge_tool(name: str, body: ToolCreate, request: Request,
                  start: Annotated[QueryBool, Query(description="false: a stopped tool is left stopped (the plan's "
                                                                "start step is not taken)")] = True):
    if body.instanceNameOnToolbox != name:
        raise ApiError(422, "invalid request", f"instanceNameOnToolbox: {body.instanceNameOnToolbox!r} is not the "
                       f"tool named in the path ({name!r})", field="instanceNameOnToolbox")
    svc = request.app.state.docker
    with svc.lock(f"tool:{name}"):
        step = _plan(svc, body, pull=True)
        if not start and step.action == "start":
            step = reconcile.Step(step.name, "unchanged", f"{step.reason}; left as it is (start=false)", step.want,
                                  step.current, step.leftovers)
        result = _apply(svc, step, body)
    return JSONResponse(ok(message=f"tool {name}: {result['outcome']} ({result['reason']})",
                           changed=result["outcome"] != "unchanged", outcome=result["outcome"], reason=result["reason"],
                           data=tool_data(_tool(request, name))), status_code=201 if step.action == "create" else 200)


@router.post("/validate", summary="What PUT /tools/{name} would do with this body (create, recreate, start, unchanged, "
                                  "clean or conflict), changing nothing (with pullPolicy always: for the image on the "
                                  "host now; the apply pulls first, `pull` says so)")
def validate_tool(body: ToolCreate, request: Request):
    step = _plan(request.app.state.docker, body)
    current = step.current.view if step.current else {}
    plan = {**step.view(), "state": current.get("state"), "config_hash": step.want.config_hash}
    if current:
        plan["current_config_hash"] = current.get("config_hash")
    return ok(valid=True, data={"plan": plan})


@router.get("/status", summary="Every managed tool instance and its state")
def tools_status(request: Request):
    tools = [tool_data(v) for v in request.app.state.docker.managed(kind=ds.KIND_TOOL)]
    return ok(data=tools, count=len(tools))


@router.post("/{name}/{action}", summary="Start, stop or restart a tool instance")
def tool_action(name: str, action: Literal["start", "stop", "restart"], request: Request,
                timeout: Annotated[QueryInt, Query(ge=0, le=600, description="seconds to wait for a graceful stop")] = 10):
    after, changed = request.app.state.docker.act(_tool(request, name), action, timeout)
    return ok(message=f"tool {name}: {action} done", changed=changed, data=tool_data(after))


@router.get("/{name}/logs", summary="Recent log lines of a tool instance")
def tool_logs(name: str, request: Request, query: tuple = Depends(log_query)):
    tail, since = query
    view = _tool(request, name)
    lines = request.app.state.docker.logs(view, tail, since)
    return ok(data={"instance_name_on_toolbox": name, "lines": lines, "count": len(lines)})


@router.delete("/{name}", summary="Stop and remove a tool instance")
def delete_tool(name: str, request: Request,
                timeout: Annotated[QueryInt, Query(ge=0, le=600, description="seconds to wait for a graceful stop")] = 10):
    view = _tool(request, name)
    request.app.state.docker.remove(view, force=False, timeout_s=timeout)
    return ok(message=f"tool {name} removed", data={"instance_name_on_toolbox": name, "container_id": view["container_id"]})
