"""Runs `mcp-tap demo` under a pseudo-terminal of 80x24 for a few seconds and prints, as JSON,
what a user would see on that terminal at the end (a real terminal emulation: pyte), and the
raw bytes the demo wrote. Used by tests/e2e/demo.rs.

    python demo_terminal.py <mcp-tap binary> <seconds>
"""
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

import pyte

COLUMNS, ROWS = 80, 24


def main():
    binary, seconds = sys.argv[1], float(sys.argv[2])
    pid, fd = pty.fork()
    if pid == 0:
        fcntl.ioctl(sys.stdout.fileno(), termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        os.environ.pop("RUST_LOG", None)
        os.execv(binary, [binary, "demo", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    raw = bytearray()

    def pump(until):
        while time.monotonic() < until:
            ready, _, _ = select.select([fd], [], [], 0.1)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                return False
            if not data:
                return False
            raw.extend(data)
            stream.feed(data)
        return True

    pump(time.monotonic() + seconds)
    display = list(screen.display)
    os.kill(pid, signal.SIGINT)
    pump(time.monotonic() + 10)
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"display": display, "raw": raw.decode("utf-8", "replace"), "exit": os.waitstatus_to_exitcode(status)}))


if __name__ == "__main__":
    main()
