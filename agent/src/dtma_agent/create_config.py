"""The Docker create config of a managed container: the caller's `baseConfigOverrideJson` merged into the agent's
base config, normalized the way Docker will read it, then checked against an allowlist. What is checked is exactly
what is sent.

How Docker 20.10 (API 1.41) reads a create body (Go's encoding/json into runconfig.ContainerConfigWrapper):
- struct keys match case-insensitively with Unicode simple folding (`privileged`, `HoſtConfig` with U+017F, a
  Kelvin sign for `k`); map keys (label names, ports, network names) are exact; of two keys naming one field the
  last wins; unknown keys are ignored; null leaves a field at its zero value.
- every HostConfig field is also read from the TOP level (the deprecated pre-1.22 form): without an inner
  HostConfig (absent or null) Docker uses the top-level ones wholesale; with one it still copies Memory,
  MemorySwap, CpuShares, CpusetCpus, VolumeDriver and the wrapper's own `Cpuset` into it where unset.
So here: keys are folded to Docker's canonical names and two keys folding to one name are refused; the override
is merged into the base (null deletes the key, as in a JSON merge patch); the merged config is checked key by key
against ALLOWED below, and top-level HostConfig fields, unknown keys and everything not allowed are a 400 naming
the key. The agent then sends this canonical config, so Docker reads nothing that was not checked.
"""

from __future__ import annotations

import copy
import ipaddress
import re
from dataclasses import dataclass
from typing import Callable

from .errors import ApiError

# ------------------------------------------------------------------------------------------- Docker's field names
CONFIG_FIELDS = (
    "Hostname Domainname User AttachStdin AttachStdout AttachStderr ExposedPorts Tty OpenStdin StdinOnce Env Cmd "
    "Healthcheck ArgsEscaped Image Volumes WorkingDir Entrypoint NetworkDisabled MacAddress OnBuild Labels StopSignal "
    "StopTimeout Shell").split()
HOST_FIELDS = (
    "Binds ContainerIDFile LogConfig NetworkMode PortBindings RestartPolicy AutoRemove VolumeDriver VolumesFrom CapAdd "
    "CapDrop CgroupnsMode Dns DnsOptions DnsSearch ExtraHosts GroupAdd IpcMode Cgroup Links OomScoreAdj PidMode "
    "Privileged PublishAllPorts ReadonlyRootfs SecurityOpt StorageOpt Tmpfs UTSMode UsernsMode ShmSize Sysctls Runtime "
    "ConsoleSize Isolation Mounts MaskedPaths ReadonlyPaths Init "
    # container.Resources, embedded in HostConfig
    "CpuShares Memory NanoCpus CgroupParent BlkioWeight BlkioWeightDevice BlkioDeviceReadBps BlkioDeviceWriteBps "
    "BlkioDeviceReadIOps BlkioDeviceWriteIOps CpuPeriod CpuQuota CpuRealtimePeriod CpuRealtimeRuntime CpusetCpus "
    "CpusetMems Devices DeviceCgroupRules DeviceRequests KernelMemory KernelMemoryTCP MemoryReservation MemorySwap "
    "MemorySwappiness OomKillDisable PidsLimit Ulimits CpuCount CpuPercent IOMaximumIOps IOMaximumBandwidth").split()
WRAPPER_FIELDS = ("HostConfig", "NetworkingConfig", "Cpuset")
MOUNT_FIELDS = ("Type", "Source", "Target", "ReadOnly", "Consistency", "BindOptions", "VolumeOptions", "TmpfsOptions")
ENDPOINT_FIELDS = ("IPAMConfig", "Links", "Aliases", "NetworkID", "EndpointID", "Gateway", "IPAddress", "IPPrefixLen",
                   "IPv6Gateway", "GlobalIPv6Address", "GlobalIPv6PrefixLen", "MacAddress", "DriverOpts")

# Why a known key is refused; anything else not allowed gets the generic reason.
_WHY = {
    "Privileged": "a privileged container owns the host",
    "CapAdd": "added capabilities reach the host kernel",
    "Devices": "host devices", "DeviceRequests": "host devices (GPUs)", "DeviceCgroupRules": "host devices",
    "VolumesFrom": "it mounts another container's volumes", "Links": "it reaches into another container",
    "PidMode": "it shares the host's or another container's PID namespace",
    "IpcMode": "it shares the host's or another container's IPC namespace",
    "UTSMode": "it shares the host's UTS namespace", "UsernsMode": "it leaves the user namespace setup",
    "CgroupnsMode": "it shares the host's cgroup namespace", "Cgroup": "it joins another cgroup",
    "CgroupParent": "it places the container in another cgroup", "Runtime": "another OCI runtime",
    "MaskedPaths": "it unmasks /proc paths", "ReadonlyPaths": "it makes /proc paths writable",
    "Sysctls": "kernel parameters", "VolumeDriver": "volume drivers can mount host paths or keep data off the host",
    "OomKillDisable": "an unkillable container can exhaust the host's memory",
    "OomScoreAdj": "it makes the kernel kill host processes first",
    "GroupAdd": "extra groups grant access to host resources", "ContainerIDFile": "it writes a host file",
    "PublishAllPorts": "it publishes every exposed port on all host addresses",
    "Cpuset": "a deprecated top-level field", "StorageOpt": "storage driver options",
    "Isolation": "another isolation technology", "ExtraHosts": "not needed by an MCP server",
}

MAX_DEPTH = 20     # of the override JSON; deeper nesting is refused before anything walks it
MAX_NODES = 5000   # values in the override, all levels together


def _fold(key) -> str:
    """Docker decodes JSON keys like Go's encoding/json: case-insensitively with Unicode simple folding, so
    `privileged` counts as `Privileged`, and `HoſtConfig` (U+017F) or a Kelvin sign (U+212A) match `s`/`k`.
    str.casefold() folds both the same way (str.lower() leaves `ſ` alone); where it folds more than Go (`ß`) it
    can only map a key Docker would ignore onto a name we then check and send canonically."""
    return str(key).casefold()


@dataclass(frozen=True)
class Scope:
    """What this container may use besides the allowlist: its own group's network and its own volumes."""
    field: str = "baseConfigOverrideJson"
    network: str | None = None      # agentopia-mcp-<groupId> for an MCP server; a tool has none
    volume_prefix: str | None = None  # agentopia-mcp-<groupId>- or agentopia-tool-<name>-; None: no volumes


def _refuse(path: str, why: str):
    raise ApiError(400, "unsafe override", f"{path} is not allowed: {why}", field=path)


def _invalid(path: str, why: str):
    raise ApiError(400, "invalid override", f"{path}: {why}", field=path)


# -------------------------------------------------------------------------------------------- value checkers
# A checker takes (value, path, scope) and returns the value to send (dicts with canonical keys), or raises.
Check = Callable[[object, str, Scope], object]


def _type(kind, name: str) -> Check:
    def check(value, path, scope):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            _invalid(path, f"must be {name}")
        return value
    return check


BOOL, INT, STR = _type(bool, "true or false"), _type(int, "an integer"), _type(str, "a string")


def _int(low: int, high: int = 2 ** 63 - 1) -> Check:
    def check(value, path, scope):
        INT(value, path, scope)
        if not low <= value <= high:
            _invalid(path, f"must be between {low} and {high}")
        return value
    return check


def _text(pattern: str, what: str) -> Check:
    rx = re.compile(pattern)

    def check(value, path, scope):
        if not isinstance(value, str) or not rx.fullmatch(value):
            _invalid(path, f"must be {what}")
        return value
    return check


def _one_of(*allowed: str, why: str = "") -> Check:
    def check(value, path, scope):
        if value not in allowed:
            _refuse(path, f"{value!r}: only {', '.join(repr(a) for a in allowed)} ({why})" if why else
                    f"{value!r}: only {', '.join(repr(a) for a in allowed)}")
        return value
    return check


def _list(item: Check, max_items: int = 256) -> Check:
    def check(value, path, scope):
        if not isinstance(value, list) or len(value) > max_items:
            _invalid(path, f"must be a list of at most {max_items} entries")
        return [item(v, f"{path}[{i}]", scope) for i, v in enumerate(value)]
    return check


def _map(key: Check, value: Check, max_items: int = 256) -> Check:
    """A JSON object whose keys are data (exact, not folded); a null value deletes the entry (merge-patch)."""
    def check(value_, path, scope):
        if not isinstance(value_, dict) or len(value_) > max_items:
            _invalid(path, f"must be an object of at most {max_items} entries")
        return {key(k, f"{path}.{k}", scope): (None if v is None else value(v, f"{path}.{k}", scope))
                for k, v in value_.items()}
    return check


def _struct(allowed: dict[str, Check], known=()) -> Check:
    """A Go struct: keys folded to canonical names, duplicates refused, only `allowed` fields accepted.
    A null value deletes the field (merge-patch); Docker would read it as unset."""
    names = {_fold(k): k for k in (*known, *allowed)}

    def check(value, path, scope):
        if not isinstance(value, dict):
            _invalid(path, "must be an object")
        out: dict = {}
        for raw, v in value.items():
            canon = names.get(_fold(raw))
            where = f"{path}.{canon or raw}"
            if canon is None:
                _refuse(where, "unknown key (Docker would ignore it; check its spelling)")
            if canon in out:
                _refuse(where, "given twice (keys that differ only in case name one field for Docker)")
            if canon not in allowed:
                _refuse(where, _WHY.get(canon, "not on the allowlist of create options"))
            out[canon] = None if v is None else allowed[canon](v, where, scope)
        return out
    return check


def _either(*checks: Check) -> Check:
    def check(value, path, scope):
        for c in checks[:-1]:
            try:
                return c(value, path, scope)
            except ApiError:
                pass
        return checks[-1](value, path, scope)
    return check


# ----------------------------------------------------------------------------------------- domain checks
_NO_NUL = r"[^\x00]*"
_ABS_PATH = r"/[^\x00:,]{0,4095}"
_PORT_KEY = r"\d{1,5}(/(tcp|udp|sctp))?"
_VOLUME_SUFFIX = re.compile(r"[A-Za-z0-9]{1,64}")
MIN_HOST_PORT = 1024


def _volume_name(name, path, scope: Scope):
    """Only this owner's volumes: `<prefix><suffix>` with an alphanumeric suffix. Group ids and tool names may hold
    `-`, `_` and `.`; a suffix without them makes the last `-` the separator, so one volume name belongs to exactly
    one group (agentopia-mcp-a-b-data is group a-b's, never group a's) and a plain name (`data`) to nobody."""
    if not isinstance(name, str) or scope.volume_prefix is None or not name.startswith(scope.volume_prefix) or \
            not _VOLUME_SUFFIX.fullmatch(name[len(scope.volume_prefix):]):
        _refuse(path, f"{name!r}: only this container's own named volumes, {scope.volume_prefix}<letters and digits> "
                      "(no host paths, no other group's volumes)")
    return name


def _bind(value, path, scope):
    if not isinstance(value, str):
        _invalid(path, "must be a string volume:/path[:ro]")
    parts = value.split(":")
    if len(parts) not in (2, 3) or parts[0].startswith(("/", ".", "~")):
        _refuse(path, f"{value!r}: only named volumes, as volume:/path[:ro|rw|nocopy] (no host paths)")
    _volume_name(parts[0], path, scope)
    _text(_ABS_PATH, "an absolute container path")(parts[1], path, scope)
    if len(parts) == 3 and not set(parts[2].split(",")) <= {"ro", "rw", "nocopy"}:
        _refuse(path, f"{value!r}: only the options ro, rw, nocopy")
    return value


def _mount(value, path, scope):
    mount = _struct({"Type": _one_of("volume", "tmpfs", why="bind mounts reach host paths"),
                     "Source": STR, "Target": _text(_ABS_PATH, "an absolute container path"), "ReadOnly": BOOL,
                     # no DriverConfig: the local driver's options (type=none,o=bind,device=/…) mount any host path
                     "VolumeOptions": _struct({"NoCopy": BOOL}, ("Labels", "DriverConfig")),
                     "TmpfsOptions": _struct({"SizeBytes": _int(0), "Mode": _int(0, 0o7777)})},
                    MOUNT_FIELDS)(value, path, scope)
    if mount.get("Type") not in ("volume", "tmpfs"):
        _refuse(f"{path}.Type", "give Type: volume or tmpfs")
    if mount["Type"] == "volume":
        _volume_name(mount.get("Source"), f"{path}.Source", scope)
    elif mount.get("Source") or mount.get("VolumeOptions"):
        _refuse(f"{path}.Source", "a tmpfs mount has no source")
    return mount


def _network_mode(value, path, scope: Scope):
    allowed = ("", "default", "bridge", "none", *((scope.network,) if scope.network else ()))
    return _one_of(*allowed, why="no host or container namespaces, no other group's networks")(value, path, scope)


def _network_name(value, path, scope: Scope):
    if value != scope.network:
        _refuse(path, f"only this group's own network{f' {scope.network!r}' if scope.network else ''}")
    return value


def _host_port(value, path, scope):
    """"" or "0" (Docker picks one), a port or a range; privileged host ports (< 1024) belong to the host's services."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{0,5}(-\d{1,5})?", value):
        _invalid(path, "must be a port number (as a string) or a range like 31000-31010")
    ports = [int(p) for p in value.split("-") if p]
    if any(p > 65535 for p in ports):
        _invalid(path, "ports are at most 65535")
    if any(0 < p < MIN_HOST_PORT for p in ports):
        _refuse(path, f"host port {value}: ports below {MIN_HOST_PORT} belong to the host's own services")
    return value


def _host_ip(value, path, scope):
    if value != "":
        try:
            ipaddress.ip_address(value)
        except (TypeError, ValueError):
            _invalid(path, "must be an IP address or empty")
    return value


def _security_opt(value, path, scope):
    if value not in ("no-new-privileges", "no-new-privileges:true", "no-new-privileges=true"):
        _refuse(path, f"{value!r}: only no-new-privileges (a security option can only tighten)")
    return value


_STRINGS = _either(_list(STR), STR)  # Docker's strslice: a list or one string


def _label_key(key, path, scope):
    if key.startswith("agentopia."):
        _refuse(path, "agentopia.* labels are the agent's own")
    return _text(r"[^\x00]{1,256}", "a label name")(key, path, scope)


# rlimits that cannot starve the host (memlock, rtprio, rttime and nice can)
_ULIMITS = ("core", "cpu", "data", "fsize", "locks", "msgqueue", "nofile", "nproc", "sigpending", "stack")

HOST_CONFIG = _struct({
    "PortBindings": _map(_text(_PORT_KEY, "a port like 8080/tcp"),
                         _list(_struct({"HostIp": _host_ip, "HostPort": _host_port}), 16)),
    "Memory": _int(0), "MemorySwap": _int(-1), "MemoryReservation": _int(0), "NanoCpus": _int(0),
    "CpuShares": _int(0), "CpuQuota": _int(-1), "CpuPeriod": _int(0), "PidsLimit": _int(-1),
    "RestartPolicy": _struct({"Name": _one_of("", "no", "always", "unless-stopped", "on-failure"),
                              "MaximumRetryCount": _int(0, 1000)}),
    "Init": BOOL, "ReadonlyRootfs": BOOL,
    "Tmpfs": _map(_text(_ABS_PATH, "an absolute container path"), _text(r"[A-Za-z0-9=,._-]{0,256}", "tmpfs options")),
    "ShmSize": _int(0),
    "LogConfig": _struct({"Type": _one_of("", "json-file", "local", "none", why="other drivers send logs off the host"),
                          "Config": _map(STR, STR, 32)}),
    "NetworkMode": _network_mode,
    "Binds": _list(_bind, 32),
    "Mounts": _list(_mount, 32),
    "CapDrop": _list(_text(r"[A-Za-z_]{1,64}", "a capability name")),
    "SecurityOpt": _list(_security_opt, 4),
    "Ulimits": _list(_struct({"Name": _one_of(*_ULIMITS), "Soft": _int(-1), "Hard": _int(-1)}), 16),
}, HOST_FIELDS)

_TOP_ALLOWED = {
    "Image": STR,
    "Cmd": _STRINGS, "Entrypoint": _STRINGS,
    "Env": _list(_text(r"[^=\x00][^\x00]*", "NAME=value"), 1024),
    "WorkingDir": _either(_one_of(""), _text(_ABS_PATH, "an absolute path")),
    "Labels": _map(_label_key, _text(_NO_NUL, "a string")),
    "ExposedPorts": _map(_text(_PORT_KEY, "a port like 8080/tcp"), _struct({})),
    # any user: root is the image's default anyway, and no user reaches beyond the container
    "User": _text(r"[A-Za-z0-9_.-]{1,64}(:[A-Za-z0-9_.-]{1,64})?", "a user[:group] name or id"),
    "StopSignal": _text(r"(SIG)?[A-Z0-9+-]{1,16}|\d{1,2}", "a signal name or number"),
    "StopTimeout": _int(0, 3600),
    "Healthcheck": _struct({"Test": _list(STR, 64), "Interval": _int(0), "Timeout": _int(0), "StartPeriod": _int(0),
                            "Retries": _int(0, 1000)}),
    # the container's own stdio; the stdio transport needs OpenStdin
    "Tty": BOOL, "OpenStdin": BOOL, "StdinOnce": BOOL, "AttachStdin": BOOL, "AttachStdout": BOOL, "AttachStderr": BOOL,
    "Hostname": _text(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}", "a host name"),
    "Domainname": _text(r"[A-Za-z0-9][A-Za-z0-9.-]{0,252}", "a domain name"),
    "HostConfig": HOST_CONFIG,
    "NetworkingConfig": _struct({"EndpointsConfig": _map(_network_name, _struct(
        {"Aliases": _list(_text(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", "a host name"), 16)}, ENDPOINT_FIELDS), 1)}),
}
_top = _struct(_TOP_ALLOWED, (*CONFIG_FIELDS, *WRAPPER_FIELDS))
_HOST_FOLDED = {_fold(k): k for k in HOST_FIELDS}


def normalize(config: dict, scope: Scope) -> dict:
    """Canonical keys, allowed keys and values only; 400 naming the first key that is not."""
    if not isinstance(config, dict):
        _invalid(scope.field, "must be an object")
    for key in config:
        if _fold(key) in _HOST_FOLDED:
            _refuse(f"{scope.field}.{_HOST_FOLDED[_fold(key)]}",
                    "a HostConfig field at the top level (the deprecated form Docker still reads); put it under HostConfig")
    return _top(config, scope.field, scope)


def merge(base: dict, override: dict) -> dict:
    """Deep-merge a canonical override into a canonical create config: null deletes a key (JSON merge patch),
    Env is merged by variable name, other lists are replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        elif key == "Env" and isinstance(value, list):
            env = dict(e.split("=", 1) if "=" in e else (e, "") for e in out.get("Env", []))
            env.update(dict(e.split("=", 1) if "=" in e else (e, "") for e in value))
            out["Env"] = [f"{k}={v}" for k, v in env.items()]
        else:
            out[key] = _drop_nulls(copy.deepcopy(value))
    return out


def _drop_nulls(value):
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def final_config(base: dict, override: dict | None, scope: Scope) -> dict:
    """The config Docker will be sent: override normalized, merged into the base, and the result checked again."""
    if not override:
        return normalize(base, scope)
    return normalize(merge(base, normalize(override, scope)), scope)


def check_shape(value, text=lambda s: s) -> None:
    """Bound depth and size before anything recurses into caller JSON (deep nesting used to end in a RecursionError
    and thousands of log lines); `text` checks every string, keys included. Raises ValueError."""
    stack, nodes = [(value, 1)], 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
        if nodes > MAX_NODES:
            raise ValueError(f"more than {MAX_NODES} values")
        if isinstance(item, str):
            text(item)
        elif isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
