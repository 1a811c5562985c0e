#!/usr/bin/env python3
"""Stand in for systemd's notification socket in tests.

usage: notify_listener.py ADDRESS OUTFILE [SECONDS]

Binds an AF_UNIX datagram socket at ADDRESS (a path, or @name for the abstract
namespace, as in NOTIFY_SOCKET), writes "listening" to OUTFILE once bound, then
appends every datagram received:

    datagram pid=SENDER_PID now=CLOCK_MONOTONIC_USEC
    FIELD=VALUE          (one line per line of the datagram)
    .

and exits after SECONDS (default 120) or on SIGTERM, so that a failed test
cannot leave it behind.  The sender's pid comes from SO_PASSCRED, as systemd
checks it for NotifyAccess=main.
"""

import os
import signal
import socket
import struct
import sys
import time


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit("usage: notify_listener.py ADDRESS OUTFILE [SECONDS]")
    address, outfile = sys.argv[1], sys.argv[2]
    lifetime = float(sys.argv[3]) if len(sys.argv) == 4 else 120.0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(0))
    signal.setitimer(signal.ITIMER_REAL, lifetime)

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    if address.startswith("@"):
        sock.bind("\0" + address[1:])
    else:
        sock.bind(address)

    ucred = struct.Struct("iII")  # pid, uid, gid
    with open(outfile, "a", encoding="utf-8", errors="backslashreplace") as out:
        out.write("listening\n")
        out.flush()
        while True:
            data, ancdata, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(ucred.size))
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
            pid = 0
            for level, kind, value in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = ucred.unpack(value[: ucred.size])[0]
            text = data.decode("utf-8", errors="backslashreplace")
            out.write("datagram pid=%d now=%d\n" % (pid, now))
            for line in text.split("\n"):
                if line:
                    out.write(line + "\n")
            out.write(".\n")
            out.flush()


if __name__ == "__main__":
    try:
        main()
    finally:
        if len(sys.argv) >= 2 and sys.argv[1].startswith("/"):
            try:
                os.unlink(sys.argv[1])
            except OSError:
                pass
