# -*- coding: utf-8 -*-
# Copyright (c) 2026, Agentopia
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# This file is private to this collection (and shared with the DTMA agent). It is not a public API.
from __future__ import annotations

# What an executed command may ask of Docker: one table that decides both
#   - the agent's filtered Docker API (dtma_agent.docker_filter), per HTTP method and path, and
#   - the shell policy, per docker CLI subcommand (cli_subcommand_kind).
# Everything not listed is denied. Two kinds are allowed:
#   read               answered for any container or image; inspect documents are redacted (see REDACTIONS)
#   managed_lifecycle  start/stop/restart, only of containers labelled agentopia.managed_by=dtma
# The agent links this file as dtma_agent/policy/docker_access.py. Standard library only.

import re

READ = "read"
MANAGED_LIFECYCLE = "managed_lifecycle"

# The label every container the agent manages carries (dtma_agent.docker_state.MANAGED_BY/MANAGED_VALUE).
MANAGED_LABEL = ("agentopia.managed_by", "dtma")

# Paths are matched after the filter strips the /vN.NN prefix and percent-decodes them.
# {id}: a container id or name (one segment); {name}: an image reference (may hold '/'); a final * : any subpath.
API_OPERATIONS = (
    # method, path, kind, redaction
    ("GET", "/_ping", READ, None),
    ("HEAD", "/_ping", READ, None),
    ("GET", "/version", READ, None),
    ("GET", "/info", READ, None),
    ("GET", "/events", READ, None),
    ("GET", "/containers/json", READ, None),
    ("GET", "/containers/{id}/json", READ, "container"),
    ("GET", "/containers/{id}/logs", READ, None),
    ("GET", "/containers/{id}/stats", READ, None),
    ("GET", "/containers/{id}/top", READ, None),
    ("GET", "/images/json", READ, None),
    ("GET", "/images/{name}/json", READ, "image"),
    ("POST", "/containers/{id}/start", MANAGED_LIFECYCLE, None),
    ("POST", "/containers/{id}/stop", MANAGED_LIFECYCLE, None),
    ("POST", "/containers/{id}/restart", MANAGED_LIFECYCLE, None),
)

# docker CLI subcommands (after the global options) and what they ask of the API.
CLI_KINDS = {
    "ps": READ, "logs": READ, "inspect": READ, "stats": READ, "top": READ, "port": READ, "version": READ,
    "info": READ, "images": READ, "events": READ,
    "container ls": READ, "container list": READ, "container ps": READ, "container inspect": READ,
    "container logs": READ, "container stats": READ, "container top": READ, "container port": READ,
    "image ls": READ, "image list": READ, "image inspect": READ, "system info": READ, "system events": READ,
    "start": MANAGED_LIFECYCLE, "stop": MANAGED_LIFECYCLE, "restart": MANAGED_LIFECYCLE,
    "container start": MANAGED_LIFECYCLE, "container stop": MANAGED_LIFECYCLE, "container restart": MANAGED_LIFECYCLE,
}

_ONLY_LIFECYCLE = "only start, stop and restart of the agent's containers are"
_IMAGES = "images are managed through the agent's API"
_NOT_A_READ = "it is not in the table of allowed reads"

# Denied operations and the reason a person reads: "<what> is not allowed for executed commands: <reason>"
# (the docker CLI prints it after "Error response from daemon:"). The first match names the reason;
# anything else gets a generic one.
DENIALS = (
    # what, CLI subcommands, API (method or "*", path), reason
    ("docker prune", ("system prune", "container prune", "image prune", "volume prune", "network prune",
                      "builder prune"),
     (("POST", "/containers/prune"), ("POST", "/images/prune"), ("POST", "/volumes/prune"),
      ("POST", "/networks/prune"), ("POST", "/build/prune")),
     "it deletes containers, images, networks or volumes"),
    ("docker run", ("run", "create", "container run", "container create"), (("POST", "/containers/create"),),
     "containers are created through the agent's API"),
    ("docker exec", ("exec", "container exec"), (("POST", "/containers/{id}/exec"), ("*", "/exec*")),
     "it runs processes in containers, outside the command's sandbox"),
    ("docker attach", ("attach", "container attach"), (("*", "/containers/{id}/attach*"),),
     "it takes over a container's terminal"),
    ("docker cp", ("cp", "container cp"), (("*", "/containers/{id}/archive"),),
     "it reads and writes container filesystems"),
    ("docker export", ("export", "container export"), (("GET", "/containers/{id}/export"),),
     "it copies a container's filesystem"),
    ("docker commit", ("commit", "container commit"), (("POST", "/commit"),), "images are not made on the droplet"),
    ("docker rm", ("rm", "container rm"), (("DELETE", "/containers/{id}"),),
     "containers are removed through the agent's API"),
    ("docker kill", ("kill", "container kill"), (("POST", "/containers/{id}/kill"),), _ONLY_LIFECYCLE),
    ("docker pause", ("pause", "container pause"), (("POST", "/containers/{id}/pause"),), _ONLY_LIFECYCLE),
    ("docker unpause", ("unpause", "container unpause"), (("POST", "/containers/{id}/unpause"),), _ONLY_LIFECYCLE),
    ("docker update", ("update", "container update"), (("POST", "/containers/{id}/update"),), _ONLY_LIFECYCLE),
    ("docker rename", ("rename", "container rename"), (("POST", "/containers/{id}/rename"),), _ONLY_LIFECYCLE),
    ("docker wait", ("wait", "container wait"), (("POST", "/containers/{id}/wait"),), _ONLY_LIFECYCLE),
    ("docker build", ("build", "builder build", "image build", "buildx"),
     (("*", "/build*"), ("*", "/session"), ("*", "/grpc")), "images are not built on the droplet"),
    ("docker pull/import", ("pull", "import", "image pull", "image import"),
     (("POST", "/images/create"), ("*", "/distribution*")), _IMAGES),
    ("docker push", ("push", "image push"), (("*", "/images/{name}/push"),), _IMAGES),
    ("docker tag", ("tag", "image tag"), (("*", "/images/{name}/tag"),), _IMAGES),
    ("docker rmi", ("rmi", "image rm"), (("DELETE", "/images/{name}"),), _IMAGES),
    ("docker save/load", ("save", "load", "image save", "image load"),
     (("*", "/images/get"), ("*", "/images/{name}/get"), ("*", "/images/load")), _IMAGES),
    ("docker search", ("search",), (("*", "/images/search"),), "registries are not reached from commands"),
    ("docker volume", ("volume",), (("*", "/volumes*"),), "volumes are managed through the agent's API"),
    ("docker network", ("network",), (("*", "/networks*"),), "networks are managed through the agent's API"),
    ("docker plugin", ("plugin",), (("*", "/plugins*"),), "plugins run with the engine's privileges"),
    ("docker swarm (node, service, stack, secret, config)", ("swarm", "node", "service", "stack", "secret", "config"),
     (("*", "/swarm*"), ("*", "/nodes*"), ("*", "/services*"), ("*", "/tasks*"), ("*", "/secrets*"),
      ("*", "/configs*")), "DTMA does not use swarm"),
    ("docker login", ("login", "logout"), (("*", "/auth"),), "registry credentials stay out of commands"),
    ("docker system df", ("system df",), (("GET", "/system/df"),), _NOT_A_READ),
    ("docker history", ("history", "image history"), (("GET", "/images/{name}/history"),), _NOT_A_READ),
    ("docker diff", ("diff", "container diff"), (("GET", "/containers/{id}/changes"),), _NOT_A_READ),
    ("docker compose", ("compose",), (), "MCP groups are deployed through the agent's API"),
)

# Inspect documents: these fields may carry secrets (environment, log-driver options such as a splunk-token).
REDACTIONS = {
    "container": (("Config", "Env"), ("HostConfig", "LogConfig", "Config")),
    "image": (("Config", "Env"), ("ContainerConfig", "Env")),
}
REDACTED = "<redacted>"

# docker's global options: harmless ones are skipped; the others point the CLI at another daemon or config.
_GLOBAL_FLAGS = {"-D", "--debug", "--tls", "--tlsverify"}
_GLOBAL_VALUE_FLAGS = {"-l", "--log-level"}
_GLOBAL_DENIED = {"-H", "--host", "-c", "--context", "--config", "--tlscacert", "--tlscert", "--tlskey"}
_MANAGEMENT = {"container", "image", "system", "volume", "network", "plugin", "swarm", "node", "service", "stack",
               "secret", "config", "builder", "buildx", "compose", "context", "trust", "manifest", "checkpoint"}


def _compile(path):
    pattern = re.escape(path).replace(r"\{id\}", "(?P<id>[^/]+)").replace(r"\{name\}", ".+")
    if pattern.endswith(r"\*"):
        pattern = pattern[:-2] + "(?:/.*)?"
    return re.compile(pattern + "$")


_ALLOWED = tuple((method, _compile(path), kind, redaction) for method, path, kind, redaction in API_OPERATIONS)
_NOT_ALLOWED = "{} is not allowed for executed commands: {}"
_DENIED_API = tuple((method, _compile(path), _NOT_ALLOWED.format(what, reason))
                    for what, _cli, api, reason in DENIALS for method, path in api)
_DENIED_CLI = dict((words, _NOT_ALLOWED.format(what, reason)) for what, cli, _api, reason in DENIALS for words in cli)


def api_operation(method, path):
    """Judge a normalized API call. Returns (kind, redaction, container, reason); kind None means denied.

    container is the {id} of the path (an id or a name as the client wrote it), or None.
    """
    for allowed_method, pattern, kind, redaction in _ALLOWED:
        match = pattern.match(path)
        if match and method == allowed_method:
            return kind, redaction, match.groupdict().get("id"), "{} {} is an allowed {}".format(method, path, kind)
    for denied_method, pattern, reason in _DENIED_API:
        if denied_method in ("*", method) and pattern.match(path):
            return None, None, None, reason
    return None, None, None, "{} {} is not an allowed Docker API call for executed commands".format(method, path)


# `docker top CONTAINER [ps OPTIONS]` passes the options to ps (the API's ps_args). The container's secrets are in
# its processes' environments, which ps prints with the BSD `e` modifier (`e`, `eww`, `auxe`) or an environ field.
_PS_FORMAT_FLAGS = ("-o", "o", "--format", "-O", "O")
_PS_ENV_FIELD = re.compile(r"(?i)env")


def top_args_refusal(ps_args):
    """None when `ps_args` (of GET /containers/{id}/top, or docker top's words after the container) cannot print
    process environments, else the reason."""
    words, expect_format = ps_args.split(), False
    for word in words:
        name, _sep, inline = word.partition("=")
        if expect_format or name in ("--format", "-o") and inline:
            fields = inline if not expect_format else word
            if _PS_ENV_FIELD.search(fields):
                break
            expect_format = False
        elif name in _PS_FORMAT_FLAGS:
            expect_format = True
        elif not word.startswith("-") and "e" in word:  # BSD options: `e` shows the environment
            break
        elif word.startswith("-") and not re.match(r"-[AaefFlyLjcHTdw]+$", word):
            break  # other dashed forms (`-auxe`) fall back to BSD parsing in procps
        elif _PS_ENV_FIELD.search(word):
            break
    else:
        return None
    return _NOT_ALLOWED.format("docker top with ps options {!r}".format(ps_args),
                               "they would print the processes' environments")


def redact(redaction, document):
    """Replace the values of secret-bearing fields of an inspect document in place (Env keeps the names)."""
    for field_path in REDACTIONS[redaction]:
        parent = document
        for key in field_path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        value = parent.get(field_path[-1])
        if isinstance(value, list):
            parent[field_path[-1]] = [item.split("=", 1)[0] + "=" + REDACTED if isinstance(item, str) else REDACTED
                                      for item in value]
        elif isinstance(value, dict):
            parent[field_path[-1]] = dict((key, REDACTED) for key in value)
    return document


def cli_subcommand_kind(words):
    """Judge a docker CLI call by its words after the executable: (kind, reason), kind None means denied.

    cli_subcommand_kind(["ps", "-a"]) -> ("read", ...); (["restart", "x"]) -> ("managed_lifecycle", ...);
    (["run", "busybox"]) -> (None, "docker run is not allowed for executed commands: ...").
    The arguments after the subcommand are not judged: the filtered API decides per container at run time.
    """
    words = list(words)
    while words and words[0].startswith("-"):
        flag = words.pop(0)
        name = flag.split("=", 1)[0]
        if name in ("-v", "--version", "-h", "--help") and not words:
            return READ, "docker {} prints the client's version or help".format(flag)
        if name in _GLOBAL_DENIED:
            return None, _NOT_ALLOWED.format("docker " + name, "commands reach Docker through the agent's socket only")
        if name in _GLOBAL_VALUE_FLAGS and "=" not in flag:
            if not words:
                break
            words.pop(0)
        elif name not in _GLOBAL_FLAGS | _GLOBAL_VALUE_FLAGS:
            return None, "docker {} is not a known global option".format(name)
    if not words or words[0] == "help":
        return READ, "docker help prints the client's help"
    sub = words[0]
    if sub in _MANAGEMENT:
        rest = [w for w in words[1:] if not w.startswith("-")]
        if rest:
            sub = sub + " " + rest[0]
    if sub in ("inspect", "container inspect", "image inspect"):
        kinds = _inspect_types(words)
        if not kinds <= {"container", "image"}:
            others = ",".join(sorted(kinds - {"container", "image"}))
            return None, _NOT_ALLOWED.format("docker inspect --type " + others, "only containers and images are")
    if sub in ("top", "container top"):
        after = words[2:] if sub == "container top" else words[1:]  # the container, then ps options
        refusal = top_args_refusal(" ".join(after[1:]))
        if refusal:
            return None, refusal
    if sub in CLI_KINDS:
        return CLI_KINDS[sub], "docker {} is an allowed {}".format(sub, CLI_KINDS[sub])
    if sub in _DENIED_CLI:
        return None, _DENIED_CLI[sub]
    if sub.split(" ")[0] in _DENIED_CLI:
        return None, _DENIED_CLI[sub.split(" ")[0]]
    return None, _NOT_ALLOWED.format("docker " + sub, "it is not in the table of allowed commands")


def _inspect_types(words):
    kinds = set()
    for index, word in enumerate(words):
        if word == "--type" and index + 1 < len(words):
            kinds.add(words[index + 1])
        elif word.startswith("--type="):
            kinds.add(word.split("=", 1)[1])
    return kinds
