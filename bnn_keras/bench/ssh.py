"""The SSH transport to a board, with the system ``ssh`` and ``scp``: one master
connection, a scratch directory, copies and remote commands with a time limit.

Every remote command is a list of arguments joined with :func:`shlex.join`, so that
each argument reaches the remote shell as one single-quoted word: no path or option
value can inject a command. Files are copied under fixed names into a directory made
by ``mktemp -d`` on the board and removed afterwards, so local file names never reach
the remote shell at all.

A killable command records its process group on the board and, when it exceeds its
time limit, the whole group is killed there (closing the local ``ssh`` alone would leave
the command running on the board). A board whose sshd has no sftp subsystem (which
``scp`` uses by default since OpenSSH 9.0) gets its files streamed through ``ssh`` and
``cat``.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bnn_keras.errors import BnnError

_TARGET = re.compile(r"^(?:(?P<user>[^@\s]+)@)?(?P<host>[A-Za-z0-9._:%\[\]-]+)$")
_SAFE_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9._/-]+$")
# $1: where to write the process group; the rest: the command, exec'ed in this group (sshd
# starts every session in a group of its own; field 5 of /proc/PID/stat is its id)
_IN_GROUP = ('f=$1; shift; g=$(cut -d" " -f5 "/proc/$$/stat" 2>/dev/null); '
             'echo "${g:-$$}" > "$f"; exec "$@"')
_KILL_GROUP = ('g=$(cat "$1" 2>/dev/null) || exit 0; kill -TERM -"$g" 2>/dev/null; sleep 1; '
               'kill -KILL -"$g" 2>/dev/null; exit 0')



@dataclass
class SshTarget:
    """Where and how to reach the board."""

    host: str
    user: str | None = None
    port: int = 22
    identity: str | None = None
    known_hosts: str | None = None
    connect_timeout: float = 10.0
    options: list[str] = field(default_factory=list)
    control_path: str | None = None  # a running master connection to multiplex over

    @classmethod
    def parse(cls, spec: str, **kwargs) -> SshTarget:
        """``USER@HOST`` or ``HOST`` (an IPv6 address in brackets or bare)."""
        m = _TARGET.match(spec.strip())
        if not m or m.group("host").startswith("-") or (m.group("user") or "").startswith("-"):
            raise BnnError(f"bad SSH target {spec!r}: expected USER@HOST or HOST")
        return cls(host=m.group("host").strip("[]"), user=m.group("user"), **kwargs)

    @property
    def destination(self) -> str:
        """``USER@HOST`` (or ``HOST``) as ssh takes it."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def scp_host(self) -> str:
        """The host part of an scp ``HOST:PATH`` (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}" if self.user else host

    def common_options(self) -> list[str]:
        """Options shared by ``ssh`` and ``scp``: never prompt, bounded connect time."""
        opts = ["-o", "BatchMode=yes",
                "-o", f"ConnectTimeout={max(1, int(round(self.connect_timeout)))}",
                "-o", "StrictHostKeyChecking=accept-new",
                "-o", "ServerAliveInterval=10", "-o", "ServerAliveCountMax=3",
                "-o", "LogLevel=ERROR"]
        if self.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        if self.identity:
            opts += ["-i", self.identity, "-o", "IdentitiesOnly=yes"]
        for option in self.options:
            opts += ["-o", option]
        if self.control_path:
            opts += ["-o", "ControlMaster=no", "-o", f"ControlPath={self.control_path}"]
        return opts

    def ssh_argv(self, remote: Sequence[str]) -> list[str]:
        """``ssh`` arguments running ``remote`` (an argument list, each word quoted)."""
        return ["ssh", "-T", "-p", str(self.port), *self.common_options(), "--",
                self.destination, shlex.join(remote)]

    def scp_argv(self, local: Path, remote_path: str) -> list[str]:
        """``scp`` arguments copying ``local`` to ``remote_path`` on the board."""
        # An absolute local path: scp never mistakes it for HOST:PATH.
        return ["scp", "-q", "-P", str(self.port), *self.common_options(), "--",
                str(local.resolve()), f"{self.scp_host}:{remote_path}"]


class RemoteTimeout(BnnError):
    """A remote command ran past its time limit."""


def last_line(text: str, default: str, limit: int = 200) -> str:
    """The last non-empty line of ``text`` (a command's error output), or ``default``."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else default)[:limit]


def _run(argv: list[str], timeout: float, what: str, target: SshTarget, stdin=None,
         status_255_unreachable: bool = True) -> subprocess.CompletedProcess:
    """Run ``argv`` (ssh or scp); exit status 255 is ssh's "cannot connect" unless
    ``status_255_unreachable`` is false (scp exits 255 for a missing sftp subsystem too)."""
    try:
        proc = subprocess.run(argv, stdin=stdin or subprocess.DEVNULL, capture_output=True,
                              text=True, errors="replace", timeout=timeout)
    except FileNotFoundError:
        raise BnnError(f"'{argv[0]}' is not installed here (install openssh-client)") from None
    except subprocess.TimeoutExpired:
        raise RemoteTimeout(f"{what} on {target.destination} timed out after {timeout:.0f} s"
                            ) from None
    if proc.returncode == 255 and status_255_unreachable:
        reason = last_line(proc.stderr, "ssh exited with status 255")
        raise BnnError(f"cannot reach {target.destination} port {target.port} over SSH: "
                       f"{reason}")
    return proc


class RemoteSession:
    """One SSH master connection and a scratch directory on the board; use as a context
    manager (the directory is removed and the connection closed on exit).

    Every ``ssh``/``scp`` of the session runs over the master connection (OpenSSH
    multiplexing), so the key exchange and login happen once.
    """

    def __init__(self, target: SshTarget, *, timeout: float = 600.0):
        self.target = target
        self.timeout = timeout
        self.remote_dir: str | None = None
        self._master: subprocess.Popen | None = None
        self._control_dir: str | None = None
        self._runs = 0

    def _start_master(self) -> None:
        t = self.target
        self._control_dir = tempfile.mkdtemp(prefix="bnnk-", dir="/tmp")  # short socket path
        control = os.path.join(self._control_dir, "cm")
        log = os.path.join(self._control_dir, "err")
        argv = ["ssh", "-M", "-N", "-p", str(t.port), *t.common_options(),
                "-o", f"ControlPath={control}", "-o", "ControlPersist=no", "--", t.destination]
        with open(log, "w") as err:
            try:
                self._master = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                                stdout=subprocess.DEVNULL, stderr=err,
                                                start_new_session=True)
            except FileNotFoundError:
                raise BnnError("'ssh' is not installed here (install openssh-client)") from None
        deadline = time.monotonic() + t.connect_timeout + 30
        while not os.path.exists(control):
            if self._master.poll() is not None:
                reason = last_line(Path(log).read_text(errors="replace"),
                                    f"ssh exited with status {self._master.returncode}")
                raise BnnError(f"cannot reach {t.destination} port {t.port} over SSH: "
                               f"{reason}")
            if time.monotonic() > deadline:
                raise BnnError(f"connecting to {t.destination} port {t.port} timed out after "
                               f"{t.connect_timeout + 30:.0f} s")
            time.sleep(0.05)
        self.target = dataclasses.replace(t, control_path=control)

    def _stop_master(self) -> None:
        if self._master is not None:
            if self._master.poll() is None:
                self._master.terminate()
                try:
                    self._master.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._master.kill()
                    self._master.wait()
            self._master = None
        if self._control_dir:
            shutil.rmtree(self._control_dir, ignore_errors=True)
            self._control_dir = None

    def run(self, remote: Sequence[str], *, timeout: float | None = None,
            what: str = "remote command") -> subprocess.CompletedProcess:
        """Run the argument list ``remote`` on the board."""
        return _run(self.target.ssh_argv(remote), timeout or self.timeout, what, self.target)

    def run_killable(self, remote: Sequence[str], *, what: str = "remote command",
                     ) -> subprocess.CompletedProcess:
        """Like :meth:`run`, but past the time limit the command's whole process group is
        killed on the board (its children too) before the timeout error is raised."""
        self._runs += 1
        group_file = f"{self.remote_dir}/group-{self._runs}"
        try:
            return self.run(["sh", "-c", _IN_GROUP, "sh", group_file, *remote], what=what)
        except RemoteTimeout:
            try:
                self.run(["sh", "-c", _KILL_GROUP, "sh", group_file], timeout=60,
                         what="stopping the timed-out benchmark")
            except BnnError:
                pass  # the timeout is the error to report
            raise

    def __enter__(self) -> RemoteSession:
        try:
            self._start_master()
            budget = self.target.connect_timeout + 30
            proc = self.run(["mktemp", "-d", "/tmp/bnn-keras.XXXXXXXX"], timeout=budget,
                            what="connecting")
            path = proc.stdout.strip()
            if proc.returncode != 0 or not _SAFE_REMOTE_DIR.match(path):
                err = last_line(proc.stderr, path or "no output")
                raise BnnError(f"cannot create a scratch directory on "
                               f"{self.target.destination}: {err}")
        except BaseException:
            self._stop_master()
            raise
        self.remote_dir = path
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self.remote_dir:
                try:
                    self.run(["rm", "-rf", "--", self.remote_dir], timeout=60,
                             what="cleaning up")
                except BnnError:
                    pass
                self.remote_dir = None
        finally:
            self._stop_master()

    def copy(self, local: str | Path, name: str) -> str:
        """Copy ``local`` into the scratch directory as ``name``; the remote path."""
        if not re.fullmatch(r"[A-Za-z0-9._-]+", name):
            raise ValueError(f"unsafe remote name {name!r}")
        remote = f"{self.remote_dir}/{name}"
        proc = _run(self.target.scp_argv(Path(local), remote), self.timeout, "copying",
                    self.target, status_255_unreachable=False)
        if proc.returncode != 0:  # e.g. no sftp subsystem on the board: stream it instead
            scp_error = last_line(proc.stderr, "scp failed", 150)
            with open(local, "rb") as f:
                proc = _run(self.target.ssh_argv(["sh", "-c", 'cat > "$1"', "sh", remote]),
                            self.timeout, "copying", self.target, stdin=f)
            if proc.returncode != 0:
                err = last_line(proc.stderr, "cat failed", 150)
                raise BnnError(f"cannot copy {local} to {self.target.destination}: scp: "
                               f"{scp_error}; ssh and cat: {err}")
        return remote
