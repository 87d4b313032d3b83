from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from .. import containers
from .. import docker_state as ds
from ..create_config import Scope
from ..errors import ApiError, ok
from ..schemas import ToolCreate
from .common import QueryInt, log_query

router = APIRouter(prefix="/tools", tags=["tools"])


def tool_data(view: dict) -> dict:
    return {"container_id": view["container_id"], "instance_name_on_toolbox": view["name"],
            "account_tool_instance_id": view["account_tool_instance_id"], "image": view["image"],
            "ports": view["ports"], "state": view["state"], "status": view["status"], "config_hash": view["config_hash"]}


def _tool(request: Request, name: str) -> dict:
    found = request.app.state.gateway.find(name, kind=ds.KIND_TOOL)
    if not found:
        raise ApiError(404, "tool not found", f"no tool instance named {name!r} is managed by this agent")
    return found


def _desired(body: ToolCreate) -> tuple[dict, dict]:
    """The labels and the full Docker create config of a tool, exactly as deploying it would create it (400 when
    the override is unsafe); its config hash label is what /tools/validate compares."""
    labels = {ds.MANAGED_BY: ds.MANAGED_VALUE, ds.KIND: ds.KIND_TOOL, ds.INSTANCE: body.instanceNameOnToolbox,
              ds.ACCOUNT_TOOL: body.accountToolInstanceId}
    scope = Scope(volume_prefix=f"agentopia-tool-{body.instanceNameOnToolbox}-")  # no network but the default ones
    return labels, containers.build_config(body.dockerImageUrl, labels, override=body.baseConfigOverrideJson, scope=scope)


def _name_owner(api, name: str) -> str | None:
    """Who holds a container name that is not one of our tools: None when the name is free."""
    details = ds.inspect_by_name(api, name)
    if details is None:
        return None
    if details["Name"] != f"/{name}":  # inspect also answers to an id prefix
        return None
    labels = details["Config"].get("Labels") or {}
    if labels.get(ds.MANAGED_BY) != ds.MANAGED_VALUE:
        return "a container the agent does not manage"
    if labels.get(ds.GROUP):
        return f"an MCP server of group {labels[ds.GROUP]}"
    return f"a managed container of kind {labels.get(ds.KIND)!r}"


@router.post("", status_code=201, summary="Deploy a tool instance (409 when its name or a host port is taken)")
def deploy_tool(body: ToolCreate, request: Request):
    gateway = request.app.state.gateway
    _labels, config = _desired(body)
    containers.ensure_image(gateway.api, body.dockerImageUrl)
    # a tool's host ports can only come from its override
    containers.create_and_start(gateway.api, body.instanceNameOnToolbox, config,
                                ports_field="baseConfigOverrideJson.HostConfig.PortBindings")
    view = gateway.find(body.instanceNameOnToolbox, kind=ds.KIND_TOOL)
    return JSONResponse(ok(message=f"tool {body.instanceNameOnToolbox} deployed", data=tool_data(view)), status_code=201)


@router.post("/validate", summary="What POST /tools would do with this body (create, recreate, unchanged or conflict), "
                                  "changing nothing")
def validate_tool(body: ToolCreate, request: Request):
    gateway = request.app.state.gateway
    _labels, config = _desired(body)
    name = body.instanceNameOnToolbox
    current = gateway.find(name, kind=ds.KIND_TOOL)
    plan = {"name": name, "action": "unchanged", "reason": "up to date", "container_id": None, "state": None,
            "config_hash": config["Labels"][ds.CONFIG_HASH]}
    if current is None:
        owner = _name_owner(gateway.api, name)
        if owner:
            plan.update(action="conflict", reason=f"the name is used by {owner}")
        else:
            plan.update(action="create", reason="not deployed")
        return ok(valid=True, data={"plan": plan})
    plan.update(container_id=current["container_id"], state=current["state"], current_config_hash=current["config_hash"])
    wanted_image = containers.local_image_id(gateway.api, body.dockerImageUrl)
    if current["config_hash"] != config["Labels"][ds.CONFIG_HASH]:
        plan.update(action="recreate", reason="configuration changed")
    elif wanted_image and current["image_id"] != wanted_image:
        plan.update(action="recreate", reason="image changed")
    return ok(valid=True, data={"plan": plan})


@router.get("/status", summary="Every managed tool instance and its state")
def tools_status(request: Request):
    tools = [tool_data(v) for v in request.app.state.gateway.managed(kind=ds.KIND_TOOL)]
    return ok(data=tools, count=len(tools))


@router.post("/{name}/{action}", summary="Start, stop or restart a tool instance")
def tool_action(name: str, action: Literal["start", "stop", "restart"], request: Request,
                timeout: Annotated[QueryInt, Query(ge=0, le=600, description="seconds to wait for a graceful stop")] = 10):
    api = request.app.state.gateway.api
    before = _tool(request, name)
    if action == "start":
        api.start(before["container_id"])
    elif action == "stop":
        api.stop(before["container_id"], timeout=timeout)
    else:
        api.restart(before["container_id"], timeout=timeout)
    after = _tool(request, name)
    changed = action == "restart" or before["state"] != after["state"]
    return ok(message=f"tool {name}: {action} done", changed=changed, data=tool_data(after))


@router.get("/{name}/logs", summary="Recent log lines of a tool instance")
def tool_logs(name: str, request: Request, query: tuple = Depends(log_query)):
    tail, since = query
    view = _tool(request, name)
    lines = containers.read_logs(request.app.state.gateway.api, view["container_id"], tail, since)
    return ok(data={"instance_name_on_toolbox": name, "lines": lines, "count": len(lines)})


@router.delete("/{name}", summary="Stop and remove a tool instance")
def delete_tool(name: str, request: Request,
                timeout: Annotated[QueryInt, Query(ge=0, le=600, description="seconds to wait for a graceful stop")] = 10):
    view = _tool(request, name)
    containers.stop_and_remove(request.app.state.gateway.api, view["container_id"], force=False, timeout_s=timeout)
    return ok(message=f"tool {name} removed", data={"instance_name_on_toolbox": name, "container_id": view["container_id"]})
