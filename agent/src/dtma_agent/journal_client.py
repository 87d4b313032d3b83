"""`journalctl` inside the exec sandbox (standard library only; the launcher copies it in with a shebang for the
system's python3): forwards its arguments to the agent's journal endpoint and prints what comes back (the protocol is
in journal.py)."""

import json
import socket
import struct
import sys

SOCKET = "/run/dtma-journal.sock"


def main() -> int:
    conn = socket.socket(socket.AF_UNIX)
    try:
        conn.connect(SOCKET)
    except OSError as exc:
        print(f"journalctl: the agent's journal endpoint is not available ({exc.strerror})", file=sys.stderr)
        return 1
    conn.sendall(json.dumps({"args": sys.argv[1:]}).encode() + b"\n")
    stream = conn.makefile("rb")
    while header := stream.read(5):
        kind, size = header[:1], struct.unpack("!I", header[1:])[0]
        data = stream.read(size)
        if kind == b"x":
            return int(data or 1)
        out = sys.stdout if kind == b"o" else sys.stderr
        out.buffer.write(data)
        out.flush()
    print("journalctl: the agent closed the connection", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
