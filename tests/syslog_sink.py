#!/usr/bin/env python3
"""Stand in for a syslog daemon in tests.

usage: syslog_sink.py SOCKET OUTFILE [HOSTNAME [SECONDS]]

Binds an AF_UNIX datagram socket at SOCKET (mode 0666, as /dev/log is) and
appends every datagram received to OUTFILE as a traditional syslog file line,
the way rsyslog's default file format writes it:

    <PRI>Mmm dd hh:mm:ss TAG: MESSAGE   (received: RFC 3164)
    Mmm dd hh:mm:ss HOSTNAME TAG: MESSAGE   (written)

A datagram in another shape is written as it came.  HOSTNAME defaults to
"testhost".  Exits after SECONDS (default 120) or on SIGTERM, so that a
failed test cannot leave it behind.
"""

import os
import re
import signal
import socket
import sys

RFC3164 = re.compile(rb"<\d{1,3}>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (.*)",
                     re.S)


def file_line(datagram, host):
    """The syslog file line for one received datagram."""
    m = RFC3164.fullmatch(datagram)
    if m is None:
        return datagram.rstrip(b"\n") + b"\n"
    return m.group(1) + b" " + host + b" " + m.group(2).rstrip(b"\n") + b"\n"


def main():
    if len(sys.argv) not in (3, 4, 5):
        sys.exit("usage: syslog_sink.py SOCKET OUTFILE [HOSTNAME [SECONDS]]")
    path, outfile = sys.argv[1], sys.argv[2]
    host = (sys.argv[3] if len(sys.argv) > 3 else "testhost").encode()
    lifetime = float(sys.argv[4]) if len(sys.argv) > 4 else 120.0

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGALRM, lambda *_: sys.exit(0))
    signal.setitimer(signal.ITIMER_REAL, lifetime)

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    os.chmod(path, 0o666)
    with open(outfile, "ab", buffering=0) as out:
        while True:
            out.write(file_line(sock.recv(65536), host))


if __name__ == "__main__":
    main()
