"""Docker is the only state: label names, the config hash, ownership, and reading managed containers back from the engine."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone

from .sdk import docker


# Every container the agent manages carries these labels; state after a restart is read back from them.
MANAGED_BY = "agentopia.managed_by"
MANAGED_VALUE = "dtma"
KIND = "agentopia.kind"                      # "tool" or "mcp"
GROUP = "agentopia.group_id"
INSTANCE = "agentopia.instance_name"
ACCOUNT_TOOL = "agentopia.account_tool_instance_id"
TRANSPORT = "agentopia.mcp_transport"
ENDPOINT = "agentopia.mcp_endpoint_path"
MCP_PORT = "agentopia.mcp_port"              # the container port the MCP server listens on
CONFIG_HASH = "agentopia.config_hash"

KIND_TOOL = "tool"
KIND_MCP = "mcp"


def config_hash(create_config: dict) -> str:
    """Hash of exactly what would be created (minus the hash label itself), so any spec change is seen."""
    labels = {k: v for k, v in create_config.get("Labels", {}).items() if k != CONFIG_HASH}
    canonical = json.dumps({**create_config, "Labels": labels}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def is_ours(labels: dict, kind: str, group: str | None = None) -> bool:
    """A container this agent manages as `kind` (and, for MCP servers, of `group`)."""
    return (labels.get(MANAGED_BY) == MANAGED_VALUE and labels.get(KIND) == kind
            and (group is None or labels.get(GROUP) == group))


def owner_of(labels: dict) -> str:
    """Who holds a container, for the message of a name conflict."""
    if labels.get(MANAGED_BY) != MANAGED_VALUE:
        return "a container the agent does not manage"
    if labels.get(GROUP):
        return f"an MCP server of group {labels[GROUP]}"
    if labels.get(KIND) == KIND_TOOL:
        return "a tool instance of this agent"
    return f"a managed container of kind {labels.get(KIND)!r}"


def label_filters(kind: str | None = None, group: str | None = None, name: str | None = None) -> dict:
    labels = [f"{MANAGED_BY}={MANAGED_VALUE}"]
    if kind:
        labels.append(f"{KIND}={kind}")
    if group:
        labels.append(f"{GROUP}={group}")
    filters: dict = {"label": labels}
    if name:
        filters["name"] = f"^/{re.escape(name)}$"  # Docker's name filter is a regular expression
    return filters


def ports_view(summary_ports: list | None) -> list[dict]:
    """Ports as the container list reports them, one entry per published or exposed port."""
    seen, out = set(), []
    for p in summary_ports or []:
        key = (p.get("PrivatePort"), p.get("Type"), p.get("PublicPort"))
        if key in seen:  # Docker lists 0.0.0.0 and :: bindings separately
            continue
        seen.add(key)
        out.append({"container_port": p.get("PrivatePort"), "protocol": p.get("Type", "tcp"),
                    "host_ip": p.get("IP"), "host_port": p.get("PublicPort")})
    return out


def summary_of(details: dict) -> dict:
    """The container-list entry shape from an inspect answer, so both read through container_view."""
    ports = []
    for key, bindings in (details["NetworkSettings"].get("Ports") or {}).items():
        port, _sep, proto = key.partition("/")
        for b in bindings or [{}]:
            ports.append({"PrivatePort": int(port), "Type": proto, "IP": b.get("HostIp"),
                          "PublicPort": int(b["HostPort"]) if b.get("HostPort") else None})
    state = details["State"]
    status = state["Status"]
    created = details.get("Created") or ""
    created = int(datetime.fromisoformat(created[:19]).replace(tzinfo=timezone.utc).timestamp()) if created else None
    return {"Id": details["Id"], "Names": [details["Name"]], "Image": details["Config"].get("Image"),
            "ImageID": details.get("Image"), "State": status, "Status": status, "Created": created,
            "Ports": ports, "Labels": details["Config"].get("Labels") or {}}


def container_view(summary: dict) -> dict:
    """A managed container as the API reports it, from one entry of the container list."""
    labels = summary.get("Labels") or {}
    names = summary.get("Names") or ["/"]
    return {
        "container_id": summary["Id"],
        "name": names[0].lstrip("/"),
        "instance_name_on_toolbox": labels.get(INSTANCE, names[0].lstrip("/")),
        "account_tool_instance_id": labels.get(ACCOUNT_TOOL) or None,
        "kind": labels.get(KIND),
        "group_id": labels.get(GROUP) or None,
        "image": summary.get("Image"),
        "image_id": summary.get("ImageID"),
        "state": summary.get("State"),
        "status": summary.get("Status"),
        "created": summary.get("Created"),
        "ports": ports_view(summary.get("Ports")),
        "mcp_transport": labels.get(TRANSPORT) or None,
        "mcp_endpoint_path": labels.get(ENDPOINT) or None,
        "mcp_port": labels.get(MCP_PORT) or None,
        "config_hash": labels.get(CONFIG_HASH) or None,
    }


def inspect_by_name(api, name: str) -> dict | None:
    """Inspect a container by name; None when there is none. Docker also resolves id prefixes, and a name like `0`
    that is no container's name but a prefix of several ids is "Multiple IDs found" (a 500 from Docker 20.10):
    not ours either."""
    try:
        return api.inspect_container(name)
    except docker.errors.NotFound:
        return None
    except docker.errors.APIError as exc:
        if "multiple ids found" in str(exc.explanation or "").lower():
            return None
        raise
