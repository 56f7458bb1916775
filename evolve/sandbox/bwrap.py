"""The `bwrap` backend: namespaces without a daemon, through bubblewrap.

The runner starts in its own PID, mount, IPC, UTS and network namespaces
(only a loopback device, so nothing is reachable). Its file system is a
read-only view of the system directories and the Python installation; the
project, the verifiers, the problems' data and the rest of the host are simply
not there. The only writable place is a fresh tmpfs at /scratch, gone when
the job ends.

Who the candidate is: started by root, bubblewrap keeps the host's user
namespace and `setpriv` drops to uid/gid 65534 (nobody) with no capabilities,
so the candidate is an ordinary unprivileged user to the kernel and cannot
read the host's root-only files even where they are mounted. Started by any
other user, bubblewrap makes a user namespace with only that user mapped and
forbids nesting further ones.

Processes: a pids cgroup per job when root (as for `process`), else
RLIMIT_NPROC; `--die-with-parent` plus the PID namespace take every process of
the job down with the runner.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from evolve.paths import RUNNER
from evolve.sandbox.errors import SandboxUnavailable
from evolve.sandbox.process import ProcessSandbox, clean_env

RUNNER_PATH = "/opt/evolve/runner.py"
SCRATCH = "/scratch"
NOBODY = 65534
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32")
# The few files of /etc an interpreter reads; not /etc itself (shadow, keys, configs).
ETC_FILES = ("ld.so.cache", "ld.so.conf", "localtime", "passwd", "group", "nsswitch.conf", "alternatives")


class BwrapUnavailable(SandboxUnavailable):
    """bubblewrap is missing or cannot make namespaces here."""


class BwrapSandbox(ProcessSandbox):
    name = "bwrap"
    isolates_filesystem = True
    isolates_network = True
    extra_procs = 4  # bwrap, its PID-1 helper, setpriv

    def __init__(self, python: str | None = None, scratch_mb: int = 64) -> None:
        self.bwrap = shutil.which("bwrap")
        if self.bwrap is None:
            raise BwrapUnavailable("bubblewrap is not installed (apt-get install -y bubblewrap)")
        self.as_root = os.geteuid() == 0
        if self.as_root and shutil.which("setpriv") is None:
            raise BwrapUnavailable("setpriv (util-linux) is needed to drop root inside bubblewrap")
        self.scratch_mb = scratch_mb
        python = str(Path(python or sys.executable).absolute())
        self.python_roots = _python_roots(python)
        self.hidden = _project_inside(self.python_roots)
        super().__init__(python=python)
        self.identity = f"bwrap-{_bwrap_version(self.bwrap)}:" + self.identity.split(":", 1)[1]

    def command(self, scratch: Path, job_id: str) -> tuple[list[str], dict[str, str]]:
        argv = [self.bwrap, *self.bwrap_arguments(), "--clearenv"]
        for key, value in clean_env(f"{SCRATCH}/job", job_id).items():
            argv += ["--setenv", key, value]
        argv += ["--", *self._drop_privileges(), self.python, "-I", RUNNER_PATH, "--workdir", f"{SCRATCH}/job"]
        # bubblewrap itself needs nothing from the environment.
        return argv, {"PATH": "/usr/bin:/bin"}

    def bwrap_arguments(self) -> list[str]:
        """The namespaces and the file system view (everything but the command)."""
        args = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--die-with-parent", "--new-session"]
        if not self.as_root:
            args += ["--unshare-user", "--disable-userns"]
        for name in SYSTEM_DIRS:
            path = Path("/") / name
            if path.is_symlink():
                args += ["--symlink", os.readlink(path), str(path)]
            elif path.is_dir():
                args += ["--ro-bind", str(path), str(path)]
        args += ["--perms", "0755", "--dir", "/etc"]
        for name in ETC_FILES:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        # Parents of the mounts made readable (bubblewrap would follow the umask).
        for parent in _parents([*self.python_roots, RUNNER_PATH]):
            args += ["--perms", "0755", "--dir", parent]
        for root in self.python_roots:
            args += ["--ro-bind", root, root]
        for hidden in self.hidden:
            args += ["--tmpfs", hidden]
        args += ["--ro-bind", str(RUNNER), RUNNER_PATH,
                 "--proc", "/proc", "--dev", "/dev",
                 "--perms", "0777", "--size", str(self.scratch_mb << 20), "--tmpfs", SCRATCH,
                 "--chdir", SCRATCH]
        if self.as_root:
            # Only what setpriv needs to become nobody and to empty the bounding set; it then drops these too.
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID",
                     "--cap-add", "CAP_SETPCAP"]
        return args

    def _drop_privileges(self) -> list[str]:
        if not self.as_root:
            return []
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--no-new-privs",
                "--inh-caps=-all", "--bounding-set=-all"]

    def probe(self) -> None:
        """Start a trivial sandbox; BwrapUnavailable with bubblewrap's own words if it fails."""
        argv = [self.bwrap, *self.bwrap_arguments(), "--", *self._drop_privileges(), self.python, "-I", "-c",
                "import os; open('/scratch/probe', 'w').write('ok')"]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise BwrapUnavailable(f"bubblewrap did not start: {error}") from None
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise BwrapUnavailable(f"bubblewrap cannot make a sandbox here: {detail}")


def _python_roots(python: str) -> list[str]:
    """Directories the interpreter needs that the system directories do not cover."""
    try:
        done = subprocess.run(
            [python, "-I", "-c", "import sys, os; print(os.path.realpath(sys.executable)); "
             "print(os.path.realpath(sys.base_prefix)); print(os.path.realpath(sys.prefix))"],
            capture_output=True, text=True, timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise BwrapUnavailable(f"sandbox.python={python} does not run: {error}") from None
    if done.returncode != 0:
        raise BwrapUnavailable(f"sandbox.python={python} does not run: {done.stderr.strip()[-200:]}")
    executable, *prefixes = done.stdout.split()
    roots = {prefix for prefix in prefixes}
    roots.add(str(Path(executable).parent))
    if python != executable:
        roots.add(str(Path(python).parent))
    system = tuple(f"/{name}" for name in SYSTEM_DIRS)
    kept = sorted(root for root in roots if not root.startswith(system) and root != "/")
    # Drop roots nested in another root.
    return [root for root in kept if not any(root != other and root.startswith(other + "/") for other in kept)]


def _project_inside(roots: list[str]) -> list[str]:
    """The engine's own files where they sit inside the mounted Python (a wheel install).

    The engine's package, the bundled verifiers and problems (with held-out
    data), and the folders of problems installed packages register, must stay
    out of the candidate's view; an empty tmpfs covers them.
    """
    import evolve
    from evolve.paths import EVALUATORS, PROBLEMS, ROOT
    from evolve.problem_registry import registered_problems

    places = {Path(evolve.__file__).resolve().parent, ROOT.resolve(), EVALUATORS.resolve(), PROBLEMS.resolve()}
    places |= {entry.file.parent.resolve() for entry in registered_problems() if entry.file is not None}
    try:
        import evaluators

        places.add(Path(evaluators.__file__).resolve().parent)
    except ImportError:
        pass
    inside = {str(place) for place in places
              if place.is_dir() and any(str(place).startswith(root + "/") for root in roots)}
    return sorted(place for place in inside if not any(place.startswith(other + "/") for other in inside))


def _parents(paths: list[str]) -> list[str]:
    """Every ancestor directory of `paths`, outermost first (not / itself)."""
    found: set[str] = set()
    for path in paths:
        found.update(str(parent) for parent in Path(path).parents if str(parent) != "/")
    return sorted(found, key=lambda item: (item.count("/"), item))


def _bwrap_version(bwrap: str) -> str:
    done = subprocess.run([bwrap, "--version"], capture_output=True, text=True, timeout=10)
    return done.stdout.strip().split()[-1] if done.returncode == 0 and done.stdout.strip() else "unknown"
