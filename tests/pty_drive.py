#!/usr/bin/python3
"""Drives a program through a real pseudo-terminal (or, with --pipe,
through pipes), for tests of the REPL.

usage: pty_drive.py [--pipe] STEPS -- command [args...]

STEPS is a file of steps, one per line (blank lines and lines starting
with # are skipped):
  send TEXT        writes TEXT to the terminal (escapes: \\n \\r \\t \\xHH)
  expect REGEX     waits until REGEX matches the output that came after the
                   previous match (Python re, DOTALL); its group 1, if any, is
                   kept for tcp
  tcp TEXT         connects to 127.0.0.1 on the port the last expect captured,
                   sends TEXT (escapes as send), reads one line back and adds
                   "[tcp] <line>" to the output
  expect-exit N    waits for the program to exit with status N
  close            closes the program's input (--pipe: end of input)
  signal NAME      sends the signal (INT, TERM, ...) to the program
With --pipe, stdout and stderr come through one pipe.
The output the program wrote (with the terminal's escapes) goes to stdout;
the status is 0 when every step passed. A step that waits gives up after
PTY_TIMEOUT seconds (default 10): a safety net for a broken build, not a
measure of time; steps synchronise on output, never on delays.
"""
import codecs
import fcntl
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time

TIMEOUT = float(os.environ.get("PTY_TIMEOUT", "10"))


def parse(path):
    steps = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            verb, _, arg = line.partition(" ")
            steps.append((verb, arg))
    return steps


class Child:
    def __init__(self, argv, pipe):
        self.out = b""
        self.mark = 0                       # output before this was matched already
        self.status = None
        self.captured = None
        if pipe:
            self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT)
            self.pid, self.fd, self.wfd = self.proc.pid, self.proc.stdout.fileno(), self.proc.stdin.fileno()
            return
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["TERM"] = os.environ.get("PTY_TERM", "xterm")
            try:
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        self.wfd = self.fd
        # 50 rows of 200 columns, so test lines do not wrap
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))

    def tcp(self, text):
        with socket.create_connection(("127.0.0.1", int(self.captured)), timeout=TIMEOUT) as c:
            c.sendall(codecs.escape_decode(text.encode())[0])
            reply = c.makefile("rb").readline()
        self.out += b"[tcp] " + reply.rstrip(b"\r\n") + b"\n"
        return True

    def close(self):
        if self.wfd != self.fd:
            self.proc.stdin.close()
        else:
            os.write(self.fd, b"\x04")

    def read(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.fd], [], [], left)
        if not r:
            return False
        try:
            data = os.read(self.fd, 65536)
        except OSError:                     # EIO: the program closed the terminal
            data = b""
        if not data:
            self.reap(deadline)
            return False
        self.out += data
        return True

    def reap(self, deadline):
        while self.status is None and time.monotonic() < deadline:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                return
            time.sleep(0.01)

    def expect(self, pattern):
        rx = re.compile(pattern.encode(), re.DOTALL)
        deadline = time.monotonic() + TIMEOUT
        while True:
            m = rx.search(self.out, self.mark)
            if m:
                self.mark = m.end()
                if m.groups():
                    self.captured = m.group(1).decode()
                return True
            if not self.read(deadline) and (self.status is not None or time.monotonic() >= deadline):
                return rx.search(self.out, self.mark) is not None

    def expect_exit(self, code):
        deadline = time.monotonic() + TIMEOUT
        while self.status is None and time.monotonic() < deadline:
            if not self.read(deadline):
                self.reap(deadline)
        return self.status == code


def main(argv):
    pipe = len(argv) > 1 and argv[1] == "--pipe"
    if pipe:
        argv = argv[1:]
    if "--" not in argv or len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    sep = argv.index("--")
    steps, cmd = parse(argv[1]), argv[sep + 1:]
    child = Child(cmd, pipe)
    ok, failed = True, None
    for verb, arg in steps:
        if verb == "send":
            os.write(child.wfd, codecs.escape_decode(arg.encode())[0])
        elif verb == "close":
            child.close()
        elif verb == "tcp":
            ok = child.tcp(arg)
        elif verb == "signal":
            os.kill(child.pid, getattr(signal, "SIG" + arg))
        elif verb == "expect":
            ok = child.expect(arg)
        elif verb == "expect-exit":
            ok = child.expect_exit(int(arg))
        else:
            ok = False
        if not ok:
            failed = f"{verb} {arg}"
            break
    if child.status is None:                # the steps did not wait for the end
        os.kill(child.pid, signal.SIGKILL)
        child.reap(time.monotonic() + 5)
    sys.stdout.write(child.out.decode(errors="replace"))
    if failed:
        sys.stdout.write(f"\n[pty_drive] FAILED at step: {failed}; exit status {child.status}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
