"""Request bodies with the predecessor's field names; validation errors become 422 naming the field."""

from __future__ import annotations

import ipaddress
import json
from typing import Any, Literal, Optional, Union

from pydantic import (BaseModel, ConfigDict, Field, SecretStr, StrictBool, StrictFloat, StrictInt, ValidationInfo,
                      field_validator, model_validator)

from .create_config import MIN_HOST_PORT, check_shape
from .sdk import docker

# Docker's own container-name rule, so a bad name is a 422 here rather than a Docker error later.
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$"
TRANSPORTS = ("stdio", "sse", "streamable-http", "websocket")
# Docker's image reference grammar (distribution/reference): [registry[:port]/]path[:tag][@sha256:digest], path
# lowercase; anything else is a 422 here instead of Docker's 400 "invalid reference format" later. The tag's \w is
# spelled in ASCII as in Docker's (Go) grammar: a Unicode \w{0,127} compiles to ~12 MB resident in pydantic's regex.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?"
IMAGE_PATTERN = rf"^(?:{_DOMAIN}/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[0-9a-f]{{64}})?$"

# Presets a server's `resourceLimits` may name (GET /mcp/templates).
RESOURCE_TEMPLATES = {
    "small": {"memory": "256m", "cpus": 0.25},
    "medium": {"memory": "512m", "cpus": 0.5},
    "large": {"memory": "1g", "cpus": 1.0},
    "xlarge": {"memory": "2g", "cpus": 2.0},
}


class _Body(BaseModel):
    # Unknown fields are ignored: existing callers send more than we read. Booleans and numbers are StrictBool /
    # StrictInt: "yes" is not true and "3" is not 3.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def utf8(text: str) -> str:
    """JSON can carry lone surrogates ("\\ud800") that no encoder accepts later; refuse them at the door."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("contains a lone surrogate (not valid Unicode text)") from None
    return text


def image_name(image: str) -> str:
    name = image.split("@", 1)[0]
    if ":" in name.rsplit("/", 1)[-1]:
        name = name.rsplit(":", 1)[0]
    if len(name) > 255:  # Docker's limit for the repository name
        raise ValueError("the repository name is longer than 255 characters")
    return image


def _bounded(value: Any) -> Any:
    """Caller JSON that something walks later: bounded depth and size, and valid Unicode everywhere."""
    check_shape(value, utf8)
    return value


def _override(value: Any) -> dict:
    """baseConfigOverrideJson arrives as an object or as a JSON string holding one."""
    if value is None or value == "":
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(utf8(value))
        except ValueError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
        except RecursionError:
            raise ValueError("nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object (a Docker container-create config)")
    return _bounded(value)


def _port_bindings(value: Any) -> dict:
    """Accept {"8080": 30001}, {"8080/tcp": "30001"}, Docker's {"8080/tcp": [{"HostPort": "30001"}]}
    or [{"containerPort": 8080, "hostPort": 30001, "protocol": "tcp", "hostIp": "127.0.0.1"}];
    return Docker's PortBindings form."""
    if not value:
        return {}
    _bounded(value)
    if isinstance(value, list):
        pairs = []
        for item in value:
            if not isinstance(item, dict) or "containerPort" not in item:
                raise ValueError("list entries need containerPort (and optionally hostPort, protocol, hostIp)")
            key = f"{item['containerPort']}/{item.get('protocol', 'tcp')}"
            pairs.append((key, {"HostPort": item.get("hostPort"), "HostIp": item.get("hostIp")}))
    elif isinstance(value, dict):
        pairs = list(value.items())
    else:
        raise ValueError("must be an object mapping container ports to host ports, or a list")
    out: dict = {}
    for key, target in pairs:
        port, _sep, proto = str(key).partition("/")
        proto = proto or "tcp"
        if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535 or proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"invalid container port {key!r}")
        targets = target if isinstance(target, list) else [target]
        bindings = []
        for t in targets:
            if isinstance(t, dict):
                lowered = {k.lower(): v for k, v in t.items()}
                host_port, host_ip = lowered.get("hostport"), lowered.get("hostip")
            else:
                host_port, host_ip = t, None
            if isinstance(host_port, bool) or not isinstance(host_port, (int, str, type(None))):
                raise ValueError(f"invalid host port {host_port!r} for {key}")
            host_port = "" if host_port in (None, "") else str(host_port)
            if host_port and (not (host_port.isascii() and host_port.isdigit()) or not 1 <= int(host_port) <= 65535):
                raise ValueError(f"invalid host port {host_port!r} for {key}")
            if host_port and int(host_port) < MIN_HOST_PORT:
                raise ValueError(f"host port {host_port} for {key}: ports below {MIN_HOST_PORT} belong to the host's services")
            host_ip = "" if host_ip is None else host_ip
            try:
                if host_ip != "":
                    ipaddress.ip_address(host_ip)
            except ValueError:
                raise ValueError(f"invalid host IP {host_ip!r} for {key}") from None
            bindings.append({"HostIp": host_ip, "HostPort": host_port})
        out[f"{port}/{proto}"] = bindings
    return out


def host_ports(bindings: dict) -> list[tuple]:
    return [(b["HostIp"], b["HostPort"], key.split("/")[1]) for key, bs in bindings.items() for b in bs if b["HostPort"]]


def _resources(value: Any) -> dict:
    """A template name, or {memory, cpus[, template]}; returned as Docker's Memory (bytes) and NanoCpus."""
    if not value:
        return {}
    if isinstance(value, str):
        value = {"template": value}
    if not isinstance(value, dict):
        raise ValueError("must be a template name or an object with memory and/or cpus")
    _bounded(value)
    for key in ("memory", "cpus"):
        item = value.get(key)
        if isinstance(item, bool) or not isinstance(item, (int, float, type(None))) and not (key == "memory" and isinstance(item, str)):
            raise ValueError(f"{key} must be a number" + (" or a size like 512m" if key == "memory" else ""))
    spec = {}
    if value.get("template"):
        if not isinstance(value["template"], str) or value["template"] not in RESOURCE_TEMPLATES:
            raise ValueError(f"unknown template {value['template']!r}; known: {', '.join(RESOURCE_TEMPLATES)}")
        spec.update(RESOURCE_TEMPLATES[value["template"]])
    spec.update({k: v for k, v in value.items() if k in ("memory", "cpus") and v not in (None, "")})
    out = {}
    if "memory" in spec:
        try:
            memory = docker.utils.parse_bytes(spec["memory"]) if isinstance(spec["memory"], str) else spec["memory"]
            if memory != int(memory):
                raise ValueError
            memory = int(memory)
        except Exception:
            raise ValueError(f"memory {spec['memory']!r} is not a size like 512m or 1g") from None
        if memory < 6 * 1024 * 1024:
            raise ValueError("memory must be at least 6m (Docker's minimum)")
        out["memory"] = memory
    if "cpus" in spec:
        cpus = float(spec["cpus"])
        if not 0.01 <= cpus <= 512:
            raise ValueError("cpus must be between 0.01 and 512")
        out["nano_cpus"] = int(cpus * 1e9)
    return out


# When the agent pulls a server's or tool's image (`pullPolicy`), as docker_container's `pull` and Compose's
# `pull_policy`: missing - only when no local image has the reference (the default: a local-only image must work);
# always - before every deployment, then the plan is made with the pulled image; never - the image must be local.
PullPolicy = Literal["missing", "always", "never"]
PULL_POLICY_FIELD = Field(default="missing", description="missing (pull only when absent), always (pull before every "
                          "deployment; recreate when the pulled image differs) or never (the image must be on the host)")


class RegistryAuth(_Body):
    """Credentials for a private registry: Docker's auth_config for the pull. Never stored, logged or returned (the
    password is a SecretStr, whose repr is masked)."""
    username: str = Field(min_length=1, max_length=256)
    password: SecretStr = Field(min_length=1, max_length=4096)
    serveraddress: Optional[str] = Field(default=None, min_length=1, max_length=512, pattern=r"^[A-Za-z0-9._:/\[\]-]+$")

    @field_validator("username")
    @classmethod
    def _text(cls, v):
        return utf8(v)

    @field_validator("password")
    @classmethod
    def _secret(cls, v):
        utf8(v.get_secret_value())
        return v

    def auth_config(self) -> dict:
        config = {"username": self.username, "password": self.password.get_secret_value()}
        if self.serveraddress:
            config["serveraddress"] = self.serveraddress
        return config


# How long a new or started container must run without a restart to count as deployed; the agent's
# DTMA_SETTLE_S when not given.
# StrictFloat takes JSON integers too (3 is 3.0) but no strings or booleans; a Union[StrictInt, StrictFloat] would
# name the field of a 422 twice, as settleSeconds.int and settleSeconds.float.
Seconds = StrictFloat
SETTLE_FIELD = Field(default=None, ge=0, le=60, description="seconds a started container must stay up without a "
                     "restart to count as deployed (default: the agent's DTMA_SETTLE_S)")


class ToolCreate(_Body):
    dockerImageUrl: str = Field(min_length=1, max_length=512, pattern=IMAGE_PATTERN)
    instanceNameOnToolbox: str = Field(pattern=NAME_PATTERN)
    accountToolInstanceId: str = Field(min_length=1, max_length=256)
    baseConfigOverrideJson: Optional[dict] = None
    settleSeconds: Optional[Seconds] = SETTLE_FIELD
    pullPolicy: PullPolicy = PULL_POLICY_FIELD
    registryAuth: Optional[RegistryAuth] = None

    @field_validator("dockerImageUrl", "accountToolInstanceId")
    @classmethod
    def _text(cls, v):
        return utf8(v)

    @field_validator("dockerImageUrl")
    @classmethod
    def _image(cls, v):
        return image_name(v)

    @field_validator("baseConfigOverrideJson", mode="before")
    @classmethod
    def _base_override(cls, v):
        return _override(v)


class McpServerSpec(_Body):
    instanceNameOnToolbox: str = Field(pattern=NAME_PATTERN)
    dockerImageUrl: str = Field(min_length=1, max_length=512, pattern=IMAGE_PATTERN)
    accountToolInstanceId: Optional[str] = Field(default=None, max_length=256)
    mcpEndpointPath: str = Field(default="/mcp", pattern=r"^/[A-Za-z0-9._~/-]*$", max_length=256)
    mcpTransportType: Literal["stdio", "sse", "streamable-http", "websocket"] = "streamable-http"
    portBindings: dict = Field(default_factory=dict)
    environmentVariables: dict[str, str] = Field(default_factory=dict)
    resourceLimits: dict = Field(default_factory=dict)
    baseConfigOverrideJson: dict = Field(default_factory=dict)
    pullPolicy: PullPolicy = PULL_POLICY_FIELD
    registryAuth: Optional[RegistryAuth] = None

    @field_validator("dockerImageUrl", "accountToolInstanceId")
    @classmethod
    def _text(cls, v):
        return v if v is None else utf8(v)

    @field_validator("dockerImageUrl")
    @classmethod
    def _image(cls, v):
        return image_name(v)

    @field_validator("portBindings", mode="before")
    @classmethod
    def _ports(cls, v):
        return _port_bindings(v)

    @field_validator("resourceLimits", mode="before")
    @classmethod
    def _limits(cls, v):
        return _resources(v)

    @field_validator("baseConfigOverrideJson", mode="before")
    @classmethod
    def _base_override(cls, v):
        return _override(v)

    @field_validator("environmentVariables", mode="before")
    @classmethod
    def _env(cls, v):
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("must be an object of NAME: value")
        _bounded(v)
        for key, val in v.items():
            if not key or "=" in key or "\0" in key:
                raise ValueError(f"invalid variable name {key!r}")
            if not isinstance(val, (str, int, float, bool)) or isinstance(val, str) and "\0" in val:
                raise ValueError(f"{key}: a value is a string, a number or a boolean, without NUL bytes")
        # numbers and booleans are passed as their text, as a shell would
        return {k: (json.dumps(val) if isinstance(val, bool) else str(val)) for k, val in v.items()}

    @property
    def mcp_port(self) -> Optional[str]:
        """The container port the MCP server listens on: the first TCP port bound."""
        for key in self.portBindings:
            port, proto = key.split("/")
            if proto == "tcp":
                return port
        return None


class GroupOptions(_Body):
    maxConcurrentDeployments: StrictInt = Field(default=3, ge=1, le=32)
    dependencyOrder: list[Union[str, list[str]]] = Field(default_factory=list, max_length=100)
    sharedNetworking: StrictBool = False
    settleSeconds: Optional[Seconds] = SETTLE_FIELD
    readyTimeoutSeconds: Optional[Seconds] = Field(
        default=None, gt=0, le=600, description="when given, an HTTP server (streamable-http, sse) with a known port "
        "must also answer MCP initialize and tools/list within these seconds after the settle window to count as "
        "deployed")


class GroupDeploy(_Body):
    groupId: str = Field(pattern=NAME_PATTERN, max_length=64)
    servers: list[McpServerSpec] = Field(min_length=1, max_length=100)
    options: GroupOptions = Field(default_factory=GroupOptions)

    # Checks that span servers are field validators, not a model validator, so a 422's fields[] names the
    # field ("servers", "options") instead of "body".
    @field_validator("servers")
    @classmethod
    def _unique(cls, servers: list[McpServerSpec]) -> list[McpServerSpec]:
        names = [s.instanceNameOnToolbox for s in servers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"instanceNameOnToolbox must be unique in a group; repeated: {', '.join(dupes)}")
        seen: dict = {}
        for server in servers:
            for hp in host_ports(server.portBindings):
                if hp in seen:
                    raise ValueError(f"host port {hp[1]}/{hp[2]} is bound by both {seen[hp]} and {server.instanceNameOnToolbox}")
                seen[hp] = server.instanceNameOnToolbox
        return servers

    @field_validator("options")
    @classmethod
    def _known_dependencies(cls, options: GroupOptions, info: ValidationInfo) -> GroupOptions:
        if "servers" not in info.data:
            return options  # the servers are invalid themselves; that error is reported
        names = {s.instanceNameOnToolbox for s in info.data["servers"]}
        for entry in options.dependencyOrder:
            for name in [entry] if isinstance(entry, str) else entry:
                if name not in names:
                    raise ValueError(f"dependencyOrder names {name!r}, which is not a server of this group")
        return options

    def waves(self) -> list[list[McpServerSpec]]:
        """dependencyOrder as deployment waves: each entry (a name or a list of names) is one wave, in order;
        servers it does not name are deployed together last."""
        by_name = {s.instanceNameOnToolbox: s for s in self.servers}
        waves, placed = [], set()
        for entry in self.options.dependencyOrder:
            names = [entry] if isinstance(entry, str) else entry
            wave = [by_name[n] for n in names if n not in placed]
            placed.update(names)
            if wave:
                waves.append(wave)
        rest = [s for s in self.servers if s.instanceNameOnToolbox not in placed]
        return waves + [rest] if rest else waves


class RedeployRequest(_Body):
    version: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


class ExecRequest(_Body):
    command: Optional[str] = Field(default=None, min_length=1, max_length=65536, description="a shell command line")
    argv: Optional[list[str]] = Field(default=None, min_length=1, max_length=4096, description="argv, run without a shell")
    timeout: StrictInt = Field(default=30000, ge=1, le=300000, description="milliseconds")
    dry_run: StrictBool = Field(default=False, description="only return the policy verdict; nothing runs")

    @field_validator("command")
    @classmethod
    def _command_text(cls, v):
        return v if v is None else utf8(v)

    @field_validator("argv")
    @classmethod
    def _argv_text(cls, v):
        for i, arg in enumerate(v or []):
            try:
                utf8(arg)
            except ValueError as exc:
                raise ValueError(f"argument {i} {exc}") from None
        return v

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.command is None) == (self.argv is None):
            raise ValueError("command: give exactly one of command (a string) or argv (a list of strings)")
        if self.argv is not None and any("\0" in a for a in self.argv):
            raise ValueError("argv: arguments cannot contain NUL bytes")
        return self
