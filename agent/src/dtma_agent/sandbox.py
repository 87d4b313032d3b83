"""The exec sandbox: how an approved command is confined, and the privileged launcher that confines it.

The policy is the explainable first gate; this is the guarantee. Every executed command runs under bubblewrap:
- as its own system user (`dtma-exec`: no supplementary groups, so neither `docker` nor `systemd-journal`),
  no capabilities, no new privileges;
- in new user, mount, PID, IPC, UTS and cgroup namespaces: the root filesystem read-only, the agent's secrets
  (config dir, state dir, log dir, TLS key, /root, /home, SSH host keys, …) replaced by empty mounts, /run empty
  but for the filtered Docker API socket, /proc showing only the command's own processes;
- with fresh size-capped tmpfs for scratch (cwd and HOME), /tmp and /var/tmp: the only writable places;
- with limits on processes, file size and address space; when the launcher kills the sandbox (timeout, cancel)
  or the command's first process ends, the PID namespace dies and the kernel kills everything in it —
  `setsid`, `nohup` and double forks included.
The host network is shared: loopback health checks are routine operations.

The agent runs as an unprivileged user and cannot switch identity, so a small root launcher (`dtma-agent
sandbox-launcher`, its own systemd unit) does the spawning. It accepts one JSON request per connection on a unix
socket only the agent's group can open, with the command's stdout and stderr pipes passed as file descriptors
(SCM_RIGHTS), and answers one JSON line with the exit status. The confinement is fixed by the launcher's own
configuration: a request chooses the argv and the timeout, never the mounts, the identity or the limits. Closing
the connection kills the sandbox.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import pwd
import resource
import signal
import socket
import stat
import subprocess
import sys
from dataclasses import dataclass, field

BWRAP = "/usr/bin/bwrap"
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_SOCKET_IN_SANDBOX = "/run/docker.sock"
JOURNAL_SOCKET_IN_SANDBOX = "/run/dtma-journal.sock"
MAX_REQUEST = 1024 * 1024
MAX_TIMEOUT_S = 310.0
# Always hidden, whatever the configuration: homes (SSH keys, shell histories), root's files, host SSH keys.
ALWAYS_HIDDEN = ("/root", "/home", "/etc/ssh", "/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/sudoers.d",
                 "/var/lib/docker", "/var/spool/cron", "/etc/ssl/private", "/var/log/journal", "/boot")
# Only these variables reach a command; nothing of the agent's or the launcher's environment does.
PASSED_THROUGH = ("TZ",)


def child_environment(scratch: str, extra: dict | None = None) -> dict:
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": scratch, "TERM": "dumb",
           "PAGER": "cat", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0", "USER": "dtma-exec"}
    env.update({k: v for k, v in (extra or {}).items() if k in PASSED_THROUGH})
    return env


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = str(text).strip().lower()
    factor = units.get(text[-1:], 1)
    number = text[:-1] if text[-1:] in units else text
    if not number.isdigit():
        raise ValueError(f"not a size: {text!r} (e.g. 64M)")
    return int(number) * factor


@dataclass
class Confinement:
    """What every sandbox gets; set once from the launcher's command line."""
    user: str = "dtma-exec"
    scratch: str = "/tmp"
    scratch_size: int = 64 << 20
    hidden: tuple = ()
    docker_socket_dir: str = "/run/dtma"
    max_procs: int = 256
    max_file_size: int = 64 << 20
    max_memory: int = 4 << 30
    bwrap: str = BWRAP
    journal_client: bytes = b""  # journal_client.py of this release, with a shebang
    sized_tmpfs: bool = True  # bubblewrap >= 0.7 (--size); older ones (Ubuntu 22.04: 0.6) are capped by the cgroup only
    _ids: tuple = field(default=(), repr=False)

    def ids(self) -> tuple[int, int]:
        if not self._ids:
            entry = pwd.getpwnam(self.user)
            if entry.pw_uid == 0:
                raise ValueError("the sandbox user must not be root")
            self._ids = (entry.pw_uid, entry.pw_gid)
        return self._ids

    def bwrap_argv(self, argv: list[str], env: dict, docker_socket: str | None,
                   journal_socket: str | None = None, journal_fd: int | None = None) -> list[str]:
        args = [self.bwrap, "--unshare-all", "--share-net", "--die-with-parent", "--new-session", "--cap-drop", "ALL",
                "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/run"]
        # `systemctl status` asks systemd over D-Bus (unprivileged: reads only) and checks /run/systemd/system first
        for path in ("/run/dbus/system_bus_socket", "/run/systemd/system"):
            if os.path.exists(path):
                args += ["--ro-bind", path, path]
        if docker_socket:
            args += ["--bind", docker_socket, DOCKER_SOCKET_IN_SANDBOX]
        # journalctl is the agent's journal client there (the sandbox user cannot read the journal; journal.py)
        if journal_socket and journal_fd is not None and os.path.exists("/usr/bin/journalctl"):
            args += ["--bind", journal_socket, JOURNAL_SOCKET_IN_SANDBOX,
                     "--perms", "0755", "--ro-bind-data", str(journal_fd), "/usr/bin/journalctl"]
        uid, gid = self.ids()
        for path in sorted(set(ALWAYS_HIDDEN) | set(self.hidden)):
            if not os.path.lexists(path) or path in ("/tmp", "/var/tmp", self.scratch):
                continue
            if not _parents_searchable(path, uid, gid):
                continue  # the sandbox user cannot even get there (and bubblewrap could not mount over it)
            if os.path.isdir(path) and not os.path.islink(path):
                args += ["--tmpfs", path]
            else:  # a file (or a link): an empty, unreadable stand-in
                args += ["--ro-bind", "/dev/null", path]
        for path in dict.fromkeys(("/tmp", "/var/tmp", self.scratch)):
            args += (["--size", str(self.scratch_size)] if self.sized_tmpfs else []) + ["--tmpfs", path]
        args += ["--chdir", self.scratch, "--clearenv"]
        for key, value in env.items():
            args += ["--setenv", key, value]
        if docker_socket:
            args += ["--setenv", "DOCKER_HOST", "unix://" + DOCKER_SOCKET_IN_SANDBOX]
        return args + ["--", *argv]

    def limit_self(self) -> None:
        """Limits every sandbox inherits (set on the launcher, which as root is exempt from NPROC itself), and
        no_new_privs so that nothing in a sandbox gains privileges through a setuid binary."""
        resource.setrlimit(resource.RLIMIT_NPROC, (self.max_procs, self.max_procs))
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.max_file_size, self.max_file_size))
        resource.setrlimit(resource.RLIMIT_AS, (self.max_memory, self.max_memory))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        pr_set_no_new_privs = 38
        if ctypes.CDLL(None, use_errno=True).prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")

    def check_socket(self, path, field: str) -> str | None:
        """A socket a request names (the filtered Docker API, the journal) must be one the agent made in its
        runtime dir."""
        if path is None:
            return None
        if not isinstance(path, str) or "\0" in path:
            raise ValueError(f"{field} must be a path")
        real = os.path.realpath(path)
        if os.path.dirname(real) != os.path.realpath(self.docker_socket_dir) or not stat.S_ISSOCK(os.lstat(real).st_mode):
            raise ValueError(f"{field} must be a socket in {self.docker_socket_dir}")
        return real

    def spawn(self, argv: list[str], env: dict, docker_socket: str | None, stdout, stderr,
              journal_socket: str | None = None) -> subprocess.Popen:
        uid, gid = self.ids()
        # bubblewrap copies the journal client in from a pipe (--ro-bind-data): no path it could be denied
        journal_fd = None
        if journal_socket and self.journal_client:
            journal_fd, write_end = os.pipe2(os.O_CLOEXEC)
            os.write(write_end, self.journal_client)  # a few KiB: within the pipe's buffer
            os.close(write_end)
        try:
            return subprocess.Popen(self.bwrap_argv(argv, env, docker_socket, journal_socket, journal_fd),
                                    stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr, user=uid, group=gid,
                                    extra_groups=[], start_new_session=True, close_fds=True,
                                    pass_fds=() if journal_fd is None else (journal_fd,), env={"PATH": SAFE_PATH},
                                    cwd="/")
        finally:
            if journal_fd is not None:
                os.close(journal_fd)


def _parents_searchable(path: str, uid: int, gid: int) -> bool:
    """Whether a user with no supplementary groups can walk to `path` (search permission on every parent)."""
    parent = os.path.dirname(os.path.abspath(path))
    while True:
        try:
            st = os.stat(parent)
        except OSError:
            return False
        bit = stat.S_IXUSR if st.st_uid == uid else stat.S_IXGRP if st.st_gid == gid else stat.S_IXOTH
        if not st.st_mode & bit:
            return False
        if parent == "/":
            return True
        parent = os.path.dirname(parent)


def validate_request(request) -> tuple[list[str], float, dict]:
    if not isinstance(request, dict):
        raise ValueError("the request must be a JSON object")
    argv, timeout = request.get("argv"), request.get("timeout_s")
    if not (isinstance(argv, list) and argv and all(isinstance(a, str) and "\0" not in a for a in argv)):
        raise ValueError("argv must be a non-empty list of strings without NUL")
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 0 < timeout <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s must be a number in (0, {MAX_TIMEOUT_S}]")
    env = request.get("env") or {}
    if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise ValueError("env must map strings to strings")
    return argv, float(timeout), env


def _exit_status(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


async def _readable(sock: socket.socket) -> None:
    loop, fd = asyncio.get_running_loop(), sock.fileno()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


class Launcher:
    """The root side: one sandbox per connection."""

    def __init__(self, confinement: Confinement):
        self.confinement = confinement

    async def serve(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        listener.setblocking(False)
        listener.listen(64)
        while True:
            conn, _addr = await loop.sock_accept(listener)
            asyncio.ensure_future(self.handle(conn))

    async def handle(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        proc = None
        try:
            request, fds = await self._receive(conn)
            try:
                argv, timeout, env = validate_request(request)
                docker_socket = self.confinement.check_socket(request.get("docker_socket"), "docker_socket")
                journal_socket = self.confinement.check_socket(request.get("journal_socket"), "journal_socket")
                if len(fds) != 2:
                    raise ValueError("pass exactly two file descriptors: stdout and stderr")
                proc = self.confinement.spawn(argv, child_environment(self.confinement.scratch, env), docker_socket,
                                              fds[0], fds[1], journal_socket)
            finally:
                for fd in fds:
                    os.close(fd)
            reply = await self._supervise(proc, conn, timeout)
        except (ValueError, OSError) as exc:  # json.JSONDecodeError is a ValueError
            reply = {"error": str(exc)}
        finally:
            if proc is not None and proc.poll() is None:
                self._kill(proc)
        try:
            await asyncio.get_running_loop().sock_sendall(conn, json.dumps(reply).encode() + b"\n")
        except OSError:
            pass
        conn.close()

    @staticmethod
    async def _receive(conn: socket.socket) -> tuple[dict, list[int]]:
        buffer, fds = b"", []
        while not buffer.endswith(b"\n"):
            await _readable(conn)
            try:
                data, new_fds, _flags, _addr = socket.recv_fds(conn, 65536, 4)
            except BlockingIOError:
                continue
            fds += new_fds
            if not data:
                break
            buffer += data
            if len(buffer) > MAX_REQUEST:
                for fd in fds:
                    os.close(fd)
                raise ValueError("request too large")
        return json.loads(buffer or b"null"), fds

    async def _supervise(self, proc: subprocess.Popen, conn: socket.socket, timeout: float) -> dict:
        """Waits for the sandbox to end, for the timeout, or for the agent to hang up (a cancelled request)."""
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(proc.pid)
        exited = loop.create_future()
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        hangup = asyncio.ensure_future(_readable(conn))  # the agent sends nothing more: readable means closed
        try:
            done, _pending = await asyncio.wait([exited, hangup], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            hangup.cancel()
            await asyncio.gather(hangup, return_exceptions=True)
        if exited in done:
            return {"exit_code": _exit_status(proc.wait()), "timed_out": False}
        self._kill(proc)
        return {"exit_code": _exit_status(proc.returncode), "timed_out": not done, "cancelled": bool(done)}

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        # bwrap's monitor dies; its child (PID 1 of the sandbox) has PDEATHSIG=SIGKILL (--die-with-parent), and the
        # kernel then kills every process in the PID namespace
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _listening_socket(path: str | None) -> socket.socket:
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        return socket.socket(fileno=3)  # systemd socket activation (dtma-sandbox.socket)
    if not path:
        raise SystemExit("dtma-agent sandbox-launcher: give --socket, or start it from its systemd socket unit")
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    return sock


def launcher_main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="dtma-agent sandbox-launcher",
                                     description="The root launcher of the exec sandbox (bubblewrap)")
    parser.add_argument("--socket", help="unix socket to listen on (without systemd socket activation)")
    parser.add_argument("--socket-group", help="group allowed to connect (the agent's), with --socket")
    parser.add_argument("--user", default="dtma-exec", help="the identity commands run as")
    parser.add_argument("--scratch", default="/tmp", help="the commands' working directory and HOME (a fresh tmpfs)")
    parser.add_argument("--scratch-size", default="64M", type=parse_size)
    parser.add_argument("--hide", action="append", default=[], help="a path the sandbox must not see (repeatable)")
    parser.add_argument("--docker-socket-dir", default="/run/dtma",
                        help="where the agent creates the filtered Docker API sockets a request may name")
    parser.add_argument("--max-procs", default=256, type=int)
    parser.add_argument("--max-file-size", default="64M", type=parse_size)
    parser.add_argument("--max-memory", default="4G", type=parse_size, help="address space per process")
    parser.add_argument("--bwrap", default=BWRAP)
    parser.add_argument("--journal-client", default=os.path.join(os.path.dirname(__file__), "journal_client.py"),
                        help="the program copied over /usr/bin/journalctl in the sandbox (this release's)")
    parser.add_argument("--journal-python", default="/usr/bin/python3", help="the interpreter that runs it there")
    args = parser.parse_args(argv)
    confinement = Confinement(user=args.user, scratch=args.scratch, scratch_size=args.scratch_size,
                              hidden=tuple(args.hide), docker_socket_dir=args.docker_socket_dir,
                              max_procs=args.max_procs, max_file_size=args.max_file_size, max_memory=args.max_memory,
                              bwrap=args.bwrap)
    with open(args.journal_client, "rb") as client:
        confinement.journal_client = b"#!%s -I\n" % args.journal_python.encode() + client.read()
    try:
        confinement.ids()
    except (KeyError, ValueError) as exc:
        print(f"dtma-agent sandbox-launcher: refusing to start: no usable user {args.user!r} ({exc})", file=sys.stderr)
        return 2
    uid, gid = confinement.ids()
    if not (_parents_searchable(args.scratch, uid, gid) or any(args.scratch.startswith(h.rstrip("/") + "/") for h in args.hide)):
        print(f"dtma-agent sandbox-launcher: refusing to start: {args.user} cannot reach the scratch dir {args.scratch} "
              "(a parent is not searchable and not hidden)", file=sys.stderr)
        return 2
    if not os.access(args.bwrap, os.X_OK):
        print(f"dtma-agent sandbox-launcher: refusing to start: {args.bwrap} is missing (install bubblewrap)",
              file=sys.stderr)
        return 2
    help_text = subprocess.run([args.bwrap, "--help"], capture_output=True, text=True, check=False).stdout
    confinement.sized_tmpfs = "--size" in help_text
    if not confinement.sized_tmpfs:
        print("dtma-agent sandbox-launcher: this bubblewrap has no --size: scratch tmpfs sizes are bounded only by the "
              "unit's MemoryMax", file=sys.stderr)
    sock = _listening_socket(args.socket)
    if args.socket:
        if args.socket_group:
            import grp  # pylint: disable=import-outside-toplevel
            os.chown(args.socket, 0, grp.getgrnam(args.socket_group).gr_gid)
        os.chmod(args.socket, 0o660)
    confinement.limit_self()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    launcher = Launcher(confinement)

    asyncio.run(launcher.serve(sock))
    return 0
