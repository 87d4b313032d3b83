"""The `dtma-agent` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings

from . import __version__
from .logbuffer import setup_logging
from .settings import Settings, SettingsError


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dtma-agent", description="DTMA, the Droplet Tool Management Agent")
    parser.add_argument("--host", help="bind address (default DTMA_HOST or 0.0.0.0)")
    parser.add_argument("--port", type=int, help="port (default DTMA_PORT or 30000)")
    parser.add_argument("--env-file", help="KEY=VALUE file (systemd EnvironmentFile format); its values win over the environment")
    parser.add_argument("--version", action="version", version=f"dtma-agent {__version__}")
    parser.add_argument("--dump-default-policy", action="store_true",
                        help="print the shipped command policy as JSON (a starting point for DTMA_POLICY_FILE) and exit")
    parser.add_argument("--check-policy", metavar="FILE", help="validate a policy file and exit (0 valid, 2 invalid)")
    return parser.parse_args(argv)


def _no_query_values(record: logging.LogRecord) -> bool:
    """The access log names the path, never the query: a token sent as ?token=… must not reach the journal
    (which GET /diagnostics/logs serves). uvicorn's args are (client, method, path with query, version, status)."""
    args = record.args
    if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
        record.args = (*args[:2], args[2].split("?", 1)[0] + "?…", *args[3:])
    return True


def keep_out_unused_modules() -> None:
    """Modules our libraries import for features the agent does not use (resident cost measured in brackets). A None
    in sys.modules makes each library take its documented path without the module."""
    unused = [
        "pydantic.v1",  # FastAPI only asks whether a route uses v1 models; none does (1.6 MB)
        # requests guesses the charset of responses that name none; the agent reads JSON and UTF-8 event streams,
        # and requests falls back to UTF-8 without a detector (2.5 MB)
        "charset_normalizer", "chardet",
    ]
    if not os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        unused.append("paramiko")  # the docker SDK's SSH transport, imported whenever installed (15 MB)
    for name in unused:
        sys.modules.setdefault(name, None)
    warnings.filterwarnings("ignore", message="Unable to find acceptable character detection dependency")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["sandbox-launcher"]:  # the root side of the exec sandbox (its own systemd unit)
        from .sandbox import launcher_main
        return launcher_main(argv[1:])
    if argv[:1] == ["exec"]:  # one command through the host's policy and sandbox, e.g. over SSH
        return exec_main(argv[1:])
    args = parse_args(argv)
    if args.dump_default_policy or args.check_policy:
        from .policy import PolicyError, dump_default_policy, load_policy
        if args.dump_default_policy:
            try:
                print(dump_default_policy())
            except BrokenPipeError:  # `| head`
                pass
            return 0
        try:
            load_policy(args.check_policy)
        except (PolicyError, OSError) as exc:
            print(f"dtma-agent: invalid policy {args.check_policy}: {exc}", file=sys.stderr)
            return 2
        print(f"{args.check_policy}: valid")
        return 0
    try:
        settings = Settings.load(env_file=args.env_file, host=args.host, port=args.port)
    except SettingsError as exc:
        print(f"dtma-agent: refusing to start: {exc}", file=sys.stderr)
        return 2
    setup_logging()
    keep_out_unused_modules()
    # no pydantic plugins in the agent: looking for them reads the metadata of every installed distribution at
    # start-up (tens of ms in a big virtualenv), and a plugin would see every request body
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    import uvicorn  # imported late so --version and refusals stay fast

    from .app import create_app
    from .policy import PolicyError

    try:
        app = create_app(settings)
    except (PolicyError, OSError) as exc:
        print(f"dtma-agent: refusing to start: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("dtma").info("DTMA agent %s listening on %s:%s (tokens: %s)", __version__, settings.host,
                                   settings.port, ", ".join(settings.tokens))
    logging.getLogger("uvicorn.access").addFilter(_no_query_values)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info", access_log=True,
                ssl_certfile=settings.tls_cert, ssl_keyfile=settings.tls_key, timeout_graceful_shutdown=5)
    return 0


def exec_main(argv) -> int:
    """`dtma-agent exec --env-file FILE < request.json`: what POST /ssh/execute does, without the HTTP service
    (the SSH fallback when the agent does not answer). The request and the answer are the route's JSON; the exit
    status is 0 when the answer is a 200."""
    import asyncio  # pylint: disable=import-outside-toplevel
    import json  # pylint: disable=import-outside-toplevel
    import types  # pylint: disable=import-outside-toplevel

    import pydantic  # pylint: disable=import-outside-toplevel

    parser = argparse.ArgumentParser(prog="dtma-agent exec", description=exec_main.__doc__)
    parser.add_argument("--env-file", help="the agent's env file: its policy, sandbox and log settings")
    args = parser.parse_args(argv)
    from . import audit, commands  # pylint: disable=import-outside-toplevel
    from .app import exec_state  # pylint: disable=import-outside-toplevel
    from .errors import ApiError, error_body  # pylint: disable=import-outside-toplevel
    from .policy import PolicyError  # pylint: disable=import-outside-toplevel
    from .schemas import ExecRequest  # pylint: disable=import-outside-toplevel

    try:
        settings = Settings.load(env_file=args.env_file)
        state = types.SimpleNamespace()
        exec_state(settings, state)
        body = ExecRequest.model_validate_json(sys.stdin.read())
    except (SettingsError, PolicyError, OSError) as exc:
        print(json.dumps(error_body("cannot run", str(exc))))
        return 2
    except pydantic.ValidationError as exc:
        print(json.dumps(error_body("invalid request", "; ".join(e["msg"] for e in exc.errors()))))
        return 2
    if settings.log_dir:
        audit.open_file(settings.log_dir)
    os.makedirs(settings.runtime_dir, mode=0o755, exist_ok=True)  # systemd removes it while the agent is down
    try:
        status, payload = asyncio.run(commands.execute(state, body, client="ssh", token_id="ssh"))
    except ApiError as exc:
        status, payload = exc.status, error_body(exc.error, exc.message, **exc.extra)
    print(json.dumps(payload))
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
