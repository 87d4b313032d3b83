"""Creating, starting and removing one managed container: shared by tools and MCP servers.

Clashes are left to Docker, which checks them atomically: a taken name fails `create` with 409 and a
taken host port fails `start`; there is no check-then-act window in the agent.
"""

from __future__ import annotations

import math


from . import docker_state as ds
from .create_config import Scope, final_config
from .errors import ApiError
from .sdk import docker

RESTART_POLICY = {"Name": "unless-stopped"}


def build_config(image: str, labels: dict, *, env: dict | None = None, port_bindings: dict | None = None,
                 resources: dict | None = None, network: str | None = None, alias: str | None = None,
                 override: dict | None = None, scope: Scope | None = None) -> dict:
    """The Docker create config for one managed container: the override merged in and the result checked against
    the allowlist (create_config.py; 400 naming the key); the agent's labels are added last, so they always win."""
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
    config = final_config(config, override, scope or Scope(network=network))
    config["Image"] = image
    config["Labels"] = {**(config.get("Labels") or {}), **labels}
    config["Labels"][ds.CONFIG_HASH] = ds.config_hash(config)
    return config


# What Docker (or the registry through it) says when credentials are missing or wrong: such a pull failure is the
# caller's registryAuth, not the image reference. "denied" alone (Docker Hub's "pull access denied ... repository does
# not exist or may require 'docker login'") counts only when credentials were given: without any it may as well be a
# misspelt image.
_AUTH_FAILURES = ("unauthorized", "authentication required", "no basic auth credentials", "incorrect username or password")
_DENIED = ("denied",)


def pull(api, image: str, field: str = "dockerImageUrl", auth=None, auth_field: str = "registryAuth") -> str:
    """Pull `image` (with `auth`, a schemas.RegistryAuth, as Docker's auth_config) and return the local image's id.
    A pull Docker or the registry refuses is a 422 naming the field to fix: `auth_field` when the registry refused
    the credentials (or wanted some), `field` otherwise. The password never appears in a message."""
    repo, tag = docker.utils.parse_repository_tag(image)
    secret = auth.password.get_secret_value() if auth is not None else None
    try:
        # streamed: Docker answers 200 and reports a failure that happens during the pull in the stream, which the
        # non-streaming call would drop
        for event in api.pull(repo, tag=tag or "latest", stream=True, decode=True,
                              auth_config=auth.auth_config() if auth is not None else None):
            if isinstance(event, dict) and event.get("error"):
                raise docker.errors.APIError(str(event["error"]), explanation=str(event["error"]))
        return api.inspect_image(image)["Id"]
    except docker.errors.APIError as exc:
        reason = str(exc.explanation or exc)
        if secret:
            reason = reason.replace(secret, "********")
    text = reason.lower()
    if any(marker in text for marker in _AUTH_FAILURES) or (auth is not None and any(m in text for m in _DENIED)):
        if auth is None:
            raise ApiError(422, "registry authentication required",
                           f"{auth_field}: the registry refused to let the agent pull {image!r} without credentials; "
                           f"give {auth_field} (username, password): {reason}", field=auth_field) from None
        raise ApiError(422, "registry authentication failed",
                       f"{auth_field}: the registry refused the credentials of user {auth.username!r} for {image!r}: "
                       f"{reason}", field=auth_field) from None
    hint = f" (an image of a private registry needs {auth_field})" if auth is None and "denied" in text else ""
    raise ApiError(422, "image unavailable", f"{field}: image {image!r} could not be pulled{hint}: {reason}",
                   field=field) from None


def ensure_image(api, image: str, field: str = "dockerImageUrl", auth=None, auth_field: str = "registryAuth") -> str:
    """Use the image if present locally (a local-only image must work); pull only when absent. Returns its id."""
    found = local_image_id(api, image, field)
    if found:
        return found
    return pull(api, image, field, auth, auth_field)


def local_image_id(api, image: str, field: str = "dockerImageUrl") -> str | None:
    try:
        return api.inspect_image(image)["Id"]
    except docker.errors.ImageNotFound:
        return None
    except docker.errors.APIError as exc:
        if exc.status_code != 400:
            raise
        # "invalid reference format": the schema's pattern should have caught it; still the caller's error
        raise ApiError(422, "invalid image", f"{field}: {exc.explanation or exc}", field=field) from None


def is_port_clash(exc: docker.errors.APIError) -> bool:
    text = str(exc.explanation or exc).lower()
    return "port is already allocated" in text or "address already in use" in text


def _status(exc: docker.errors.APIError, error: str) -> tuple[int, str]:
    """Docker's 4xx on create/start is about what was asked (a memory limit below its minimum, a network or a
    command that does not exist): the caller's error, a 400. Anything else is Docker failing: 502."""
    code = exc.status_code or 502
    return (400, f"{error}: invalid container config") if 400 <= code < 500 else (502, error)


def create_and_start(api, name: str, config: dict, name_field: str = "instanceNameOnToolbox",
                     ports_field: str = "portBindings") -> str:
    """Create and start; on any failure nothing is left behind. Returns the container id."""
    try:
        container_id = api.create_container_from_config(config, name=name)["Id"]
    except docker.errors.APIError as exc:
        if exc.status_code == 409:
            raise ApiError(409, "name conflict", f"{name_field}: a container named {name!r} already exists",
                           field=name_field) from None
        raise ApiError(*_status(exc, "create failed"), f"Docker refused to create {name!r}: {exc.explanation or exc}") from None
    try:
        api.start(container_id)
    except docker.errors.APIError as exc:
        remove(api, container_id, force=True)
        if is_port_clash(exc):
            raise ApiError(409, "port conflict", f"{name!r}: a host port is already in use: {exc.explanation}",
                           field=ports_field) from None
        raise ApiError(*_status(exc, "start failed"), f"{name!r} could not be started: {exc.explanation or exc}") from None
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
