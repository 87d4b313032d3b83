"""Creating, starting and removing one managed container: shared by tools and MCP servers.

Clashes are left to Docker, which checks them atomically: a taken name fails `create` with 409 and a
taken host port fails `start`; there is no check-then-act window in the agent.
"""

from __future__ import annotations

import copy
import math

import docker.errors
from docker.utils import parse_repository_tag

from . import docker_state as ds
from .errors import ApiError

RESTART_POLICY = {"Name": "unless-stopped"}
DOCKER_SOCKETS = ("docker.sock",)
_HOST_MODES = ("NetworkMode", "PidMode", "IpcMode", "UsernsMode", "UTSMode", "CgroupnsMode")
_FORBIDDEN_LISTS = ("CapAdd", "Devices", "DeviceRequests", "DeviceCgroupRules", "VolumesFrom")
# Setting these (even to []) replaces Docker's masked / read-only /proc paths: what systempaths=unconfined does.
_PROC_PATHS = ("MaskedPaths", "ReadonlyPaths")


def _fold(key) -> str:
    """Docker decodes JSON keys like Go's encoding/json: case-insensitively with Unicode simple folding, so
    `privileged` counts as `Privileged`, and `HoſtConfig` (U+017F) or a Kelvin sign (U+212A) match `s`/`k`.
    str.casefold() folds both the same way; str.lower() leaves `ſ` alone."""
    return str(key).casefold()


_CANONICAL = {_fold(k): k for k in ("Env", "Labels", "HostConfig", "Image", "Privileged", "Binds", "Mounts",
                                    "SecurityOpt", "ExposedPorts", "PortBindings", *_HOST_MODES, *_FORBIDDEN_LISTS,
                                    *_PROC_PATHS)}


def _folded(value):
    """A mount spec with every key folded, at any depth (VolumeOptions.DriverConfig.Options ...)."""
    if isinstance(value, dict):
        return {_fold(k): _folded(v) for k, v in value.items()}
    return value


def _canonical_keys(obj: dict, where: str) -> dict:
    out: dict = {}
    for key, value in obj.items():
        canon = _CANONICAL.get(_fold(key), key)
        if canon in out:
            raise ApiError(400, "ambiguous override", f"{where} sets {canon} twice (keys differ only in case)", field=where)
        out[canon] = _canonical_keys(value, f"{where}.{canon}") if isinstance(value, dict) and canon == "HostConfig" else value
    return out


def check_override(override: dict, field: str = "baseConfigOverrideJson") -> dict:
    """Refuse any key that grants host access; return the override with canonical key names."""
    override = _canonical_keys(override, field)
    host = override.get("HostConfig") or {}
    if not isinstance(host, dict):
        raise ApiError(400, "invalid override", f"{field}.HostConfig must be an object", field=f"{field}.HostConfig")

    def refuse(key: str, why: str):
        raise ApiError(400, "unsafe override", f"{field}.{key} is not allowed: {why}", field=f"{field}.{key}")

    if host.get("Privileged") or override.get("Privileged"):
        refuse("HostConfig.Privileged", "privileged containers own the host")
    for key in _FORBIDDEN_LISTS:
        if host.get(key):
            refuse(f"HostConfig.{key}", "it grants access to host devices, capabilities or other containers' mounts")
    for key in _HOST_MODES:
        mode = str(host.get(key, "")).lower()
        if mode == "host":
            refuse(f"HostConfig.{key}", "sharing the host's namespace escapes the container")
        if mode.startswith("container:"):
            refuse(f"HostConfig.{key}", "joining another container's namespaces reaches what that container can")
    for bind in host.get("Binds") or []:
        source = str(bind).split(":", 1)[0]
        if source.startswith("/") or any(s in str(bind) for s in DOCKER_SOCKETS):
            refuse("HostConfig.Binds", f"host path {source!r} cannot be mounted; use a named volume")
    for key in _PROC_PATHS:
        if host.get(key) is not None:
            refuse(f"HostConfig.{key}", "replacing the masked / read-only /proc paths unconfines the container")
    for mount in host.get("Mounts") or []:
        if not isinstance(mount, dict):
            raise ApiError(400, "invalid override", f"{field}.HostConfig.Mounts entries must be objects",
                           field=f"{field}.HostConfig.Mounts")
        mount = _folded(mount)
        if str(mount.get("type", "volume")).lower() == "bind" or any(s in str(mount.get("source", "")) for s in DOCKER_SOCKETS):
            refuse("HostConfig.Mounts", "bind mounts of host paths are not allowed; use a named volume")
        if (mount.get("volumeoptions") or {}).get("driverconfig"):
            # the local driver's options (type=none, o=bind, device=/...) mount any host path
            refuse("HostConfig.Mounts", "volume driver options can mount host paths; use a plain named volume")
    for opt in host.get("SecurityOpt") or []:
        lowered = str(opt).lower().replace(":", "=")
        if "unconfined" in lowered or lowered == "label=disable":
            refuse("HostConfig.SecurityOpt", f"{opt!r} disables confinement")
    return override


def merge(base: dict, override: dict) -> dict:
    """Deep-merge a Docker create config; Env is merged by variable name, other lists are replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif key == "Env" and isinstance(value, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in out.get("Env", []))
            env.update(dict(str(e).split("=", 1) if "=" in str(e) else (str(e), "") for e in value))
            out["Env"] = [f"{k}={v}" for k, v in env.items()]
        else:
            out[key] = copy.deepcopy(value)
    return out


def build_config(image: str, labels: dict, *, env: dict | None = None, port_bindings: dict | None = None,
                 resources: dict | None = None, network: str | None = None, alias: str | None = None,
                 override: dict | None = None) -> dict:
    """The Docker create config for one managed container; the override can add to it but not replace our labels."""
    host_config: dict = {"RestartPolicy": dict(RESTART_POLICY), "Init": True}
    config: dict = {"Image": image, "Labels": {}, "HostConfig": host_config}
    if env:
        config["Env"] = [f"{k}={v}" for k, v in env.items()]
    if port_bindings:
        config["ExposedPorts"] = {port: {} for port in port_bindings}
        host_config["PortBindings"] = port_bindings
    if resources:
        if resources.get("memory"):
            host_config["Memory"] = resources["memory"]
        if resources.get("nano_cpus"):
            host_config["NanoCpus"] = resources["nano_cpus"]
    if network:
        host_config["NetworkMode"] = network
        config["NetworkingConfig"] = {"EndpointsConfig": {network: {"Aliases": [alias] if alias else []}}}
    if override:
        config = merge(config, override)
    config["Image"] = image
    config["Labels"] = {**(config.get("Labels") or {}), **labels}
    config["Labels"][ds.CONFIG_HASH] = ds.config_hash(config)
    return config


def ensure_image(api, image: str, field: str = "dockerImageUrl") -> str:
    """Use the image if present locally (a local-only image must work); pull only when absent. Returns its id."""
    try:
        return api.inspect_image(image)["Id"]
    except docker.errors.ImageNotFound:
        pass
    repo, tag = parse_repository_tag(image)
    try:
        api.pull(repo, tag=tag or "latest")
        return api.inspect_image(image)["Id"]
    except docker.errors.APIError as exc:
        raise ApiError(422, "image unavailable",
                       f"{field}: image {image!r} is not present locally and could not be pulled: {exc.explanation or exc}",
                       field=field) from None


def local_image_id(api, image: str) -> str | None:
    try:
        return api.inspect_image(image)["Id"]
    except docker.errors.ImageNotFound:
        return None


def is_port_clash(exc: docker.errors.APIError) -> bool:
    text = str(exc.explanation or exc).lower()
    return "port is already allocated" in text or "address already in use" in text


def create_and_start(api, name: str, config: dict, name_field: str = "instanceNameOnToolbox",
                     ports_field: str = "portBindings") -> str:
    """Create and start; on any failure nothing is left behind. Returns the container id."""
    try:
        container_id = api.create_container_from_config(config, name=name)["Id"]
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise ApiError(409, "name conflict", f"{name_field}: a container named {name!r} already exists",
                           field=name_field) from None
        raise ApiError(502, "create failed", f"Docker refused to create {name!r}: {exc.explanation or exc}") from None
    try:
        api.start(container_id)
    except docker.errors.APIError as exc:
        remove(api, container_id, force=True)
        if is_port_clash(exc):
            raise ApiError(409, "port conflict", f"{name!r}: a host port is already in use: {exc.explanation}",
                           field=ports_field) from None
        raise ApiError(502, "start failed", f"{name!r} could not be started: {exc.explanation or exc}") from None
    return container_id


def remove(api, container_id: str, force: bool = True) -> None:
    try:
        api.remove_container(container_id, force=force, v=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc.explanation or exc):  # a concurrent removal does our job
            raise


def stop_and_remove(api, container_id: str, force: bool, timeout_s: float) -> None:
    """forceRemove kills at once; otherwise the container gets `timeout_s` to stop gracefully."""
    if not force:
        try:
            api.stop(container_id, timeout=max(0, math.ceil(timeout_s)))
        except docker.errors.NotFound:
            return
    remove(api, container_id, force=True)


# Docker parses `since` as an int64; anything beyond year 9999 means "the future" anyway.
_MAX_SINCE = 253402300799


def read_logs(api, container_id: str, tail: int, since: int | None = None) -> list[str]:
    if since is not None:
        # docker-py refuses since <= 0 (the epoch or before it means "from the beginning")
        since = min(since, _MAX_SINCE) if since > 0 else None
    raw = api.logs(container_id, stdout=True, stderr=True, tail=tail, since=since, timestamps=False)
    return raw.decode("utf-8", "replace").splitlines()
