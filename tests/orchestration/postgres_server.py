"""A throwaway PostgreSQL server from Debian's binaries, for tests.

`running_postgres()` initdb's a cluster in a fresh temporary folder, starts it on a free
127.0.0.1 port with password auth, creates one database and yields the DAGSTER_PG_* settings
that dagster_home/postgres/dagster.yaml reads. The server and its folder go away afterwards.

PostgreSQL refuses to run as root, so under root (CI, containers) the server runs as the
`postgres` user that Debian's package creates. Run this file to get a server by hand:
`python tests/orchestration/postgres_server.py` prints the exports and waits for Ctrl-C.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

USER = "dagster"
PASSWORD = "dagster-test"
DB = "dagster_test"
# The data is thrown away: skip durability, which makes DDL-heavy setups much faster.
FAST = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/<major>/bin holding initdb and pg_ctl, else None."""
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        p = Path(d)
        major = p.parent.name
        if (p / "initdb").is_file() and (p / "pg_ctl").is_file() and major.isdigit():
            found.append((int(major), p))
    return max(found)[1] if found else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None = the current user; under root, an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL")


def _as(who: pwd.struct_passwd | None) -> dict:
    """subprocess keywords that drop root's identity, groups included."""
    return {} if who is None else {"user": who.pw_uid, "group": who.pw_gid, "extra_groups": []}


def _run(cmd: list[str], who: pwd.struct_passwd | None, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **_as(who), **kw)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr or res.stdout}")
    return res


@contextmanager
def running_postgres(bin_dir: Path | None = None) -> Iterator[dict[str, str]]:
    """Start a server, yield {"DAGSTER_PG_HOST": ..., ...}, stop it and delete its files."""
    bin_dir = bin_dir or find_bin_dir()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    who = _server_user()
    # In /tmp itself, not under pytest's root-only tmp folder: the server user must reach it.
    root = Path(tempfile.mkdtemp(prefix="btlake-pg-"))
    data, log, pwfile = root / "data", root / "server.log", root / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if who is not None:
        for p in (root, pwfile):
            os.chown(p, who.pw_uid, who.pw_gid)
    env = {**os.environ, "LC_ALL": "C", "HOME": str(root)}
    try:
        initdb, pg_ctl, createdb = (str(bin_dir / n) for n in ("initdb", "pg_ctl", "createdb"))
        auth = ["-U", USER, f"--pwfile={pwfile}", "--auth=scram-sha-256"]
        _run(
            [initdb, "-D", str(data), *auth, "-E", "UTF8", "--no-locale", "--no-sync"], who, env=env
        )
        # A port can be taken between picking and binding it: try a few.
        for attempt in range(3):
            port = _free_port()
            opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} " + FAST
            try:
                _run(
                    [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-o", opts, "start"],
                    who,
                    env=env,
                )
                break
            except RuntimeError:
                if attempt == 2:
                    raise RuntimeError(f"PostgreSQL did not start:\n{_tail(log)}") from None
        client_env = {**env, "PGPASSWORD": PASSWORD}
        _run([createdb, "-h", "127.0.0.1", "-p", str(port), "-U", USER, DB], None, env=client_env)
        yield {
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": USER,
            "DAGSTER_PG_PASSWORD": PASSWORD,
            "DAGSTER_PG_DB": DB,
        }
    finally:
        if (data / "postmaster.pid").exists():  # also after a start that timed out
            # immediate: no checkpoint, the cluster is deleted next anyway.
            stop = [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
            subprocess.run(stop, capture_output=True, timeout=60, **_as(who))
        shutil.rmtree(root, ignore_errors=True)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


if __name__ == "__main__":
    import signal
    import sys

    # Ctrl-C or kill: leave through the context manager, which stops the server. Both set
    # explicitly, since a shell's background job starts with SIGINT ignored.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: sys.exit(0))
    with running_postgres() as settings:
        for k, v in settings.items():
            print(f"export {k}={v}")
        print("# PostgreSQL is running; Ctrl-C stops it and deletes its data.", flush=True)
        while True:
            signal.pause()
