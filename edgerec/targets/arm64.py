"""An emulated AArch64 target: Debian arm64, CPython 3.11 and the aarch64 numpy/onnxruntime wheels.

It lets a user on x86 check that an export loads under the aarch64 onnxruntime build (which has
its own MLAS kernels, including the int8 dot-product ones) and recommends what it does on the host.
The interpreter runs under qemu user-mode emulation, called explicitly (binfmt_misc is not needed).
Timings taken here say nothing about ARM speed, because qemu translates every instruction.

Layout of an environment root:

    sysroot/       Debian arm64 unpacked with `debootstrap --foreign` and `dpkg-deb --extract`
    site/          the unpacked wheels, put on PYTHONPATH
    cpuinfo        an ARM /proc/cpuinfo, bind-mounted over the host's file for every run
    manifest.json  versions and build date; written last, so a complete build is one that has it

Run `python -m edgerec.targets.arm64 setup` to build it without the CLI (in CI, for example).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import logging
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from edgerec.errors import EdgerecError, TargetError

logger = logging.getLogger(__name__)

SUITE = "bookworm"
PYTHON = "python3.11"
QEMU = "qemu-aarch64-static"
# Neoverse-N1 has the Armv8.2 dot-product instructions (SDOT/UDOT), so onnxruntime takes the
# int8 kernels that ARM servers and recent phones use. It must match the `cpuinfo` file: under a
# core without them (QEMU_CPU=cortex-a57, say) the interpreter dies of SIGILL.
QEMU_CPU = "neoverse-n1"
HOST_PACKAGES = ("qemu-user-static", "debootstrap")
HOME_VARIABLE = "EDGEREC_ARM64_HOME"
MIRROR_VARIABLE = "EDGEREC_ARM64_MIRROR"
MANIFEST_FORMAT = 1

_WHEEL_PLATFORM = "manylinux_2_28_aarch64"
_ROOTS = ("numpy", "onnxruntime")
_FIX_HOST_TOOLS = "apt-get install qemu-user-static debootstrap"
_FIX_ENV = "run `edgerec device setup arm64` or `python -m edgerec.targets.arm64 setup`"

# `unshare --mount` gives the launcher a mount namespace of its own (util-linux makes it private),
# so the bind mount is seen by this one process tree and disappears with it.
# Limitation: running needs root (and CAP_SYS_ADMIN) because of this bind mount. qemu's `-L`
# lookup would also find a file at sysroot/proc/cpuinfo without root (it does with qemu 7.2), but
# that is no documented qemu behaviour, and newer qemu write their own /proc/cpuinfo.
_LAUNCHER = 'mount --bind "$1" /proc/cpuinfo || exit 125; shift; exec "$@"'

# Printed by the emulated interpreter. getauxval(AT_HWCAP=16) bit 20 is HWCAP_ASIMDDP: whether
# qemu really offers the dot-product instructions to onnxruntime.
_PROBE = """\
import ctypes, json, platform
import numpy, onnxruntime
hwcap = ctypes.CDLL(None).getauxval
hwcap.restype = ctypes.c_ulong
print(json.dumps({
    "machine": platform.machine(),
    "python": platform.python_version(),
    "numpy": numpy.__version__,
    "onnxruntime": onnxruntime.__version__,
    "providers": onnxruntime.get_available_providers(),
    "asimddp": bool(hwcap(16) & (1 << 20)),
}))
"""


@dataclasses.dataclass(frozen=True)
class Arm64Env:
    """An emulated AArch64 environment rooted at `root` (which may not be built yet)."""

    root: Path

    @property
    def sysroot(self) -> Path:
        return self.root / "sysroot"

    @property
    def python(self) -> Path:
        return self.sysroot / "usr" / "bin" / PYTHON

    @property
    def site(self) -> Path:
        return self.root / "site"

    @property
    def cpuinfo(self) -> Path:
        return self.root / "cpuinfo"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def manifest(self) -> dict:
        """The versions and build date recorded when the environment was built."""
        try:
            return json.loads(self.manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise TargetError(f"no readable manifest at {self.manifest_path}: {_FIX_ENV}") from exc

    def is_ready(self) -> bool:
        """Whether a complete build of the current format lies at `root`."""
        try:
            manifest = self.manifest()
        except TargetError:
            return False
        return (
            manifest.get("format") == MANIFEST_FORMAT
            and self.python.is_file()
            and self.site.is_dir()
            and self.cpuinfo.is_file()
        )


def default_root() -> Path:
    """`$EDGEREC_ARM64_HOME`, else `~/.cache/edgerec/arm64`."""
    return Path(os.environ.get(HOME_VARIABLE) or Path.home() / ".cache" / "edgerec" / "arm64")


def unavailable_reason(*, build: bool = False) -> str | None:
    """None if the environment can run here (and be built, with `build`), else why and the fix."""
    if platform.system() != "Linux":
        return f"the arm64 target needs Linux for qemu user-mode emulation, not {platform.system()}"
    if shutil.which(QEMU) is None:
        return f"{QEMU} not found: {_FIX_HOST_TOOLS}"
    for tool, package in (("unshare", "util-linux"), ("mount", "mount")):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install {package}"
    if build:
        for tool in ("debootstrap", "dpkg-deb"):
            if shutil.which(tool) is None:
                return f"{tool} not found: {_FIX_HOST_TOOLS}"
    if os.geteuid() != 0:
        return "the arm64 target must run as root (it bind-mounts an ARM /proc/cpuinfo): use sudo"

    # Root inside a container may still lack CAP_SYS_ADMIN, which mount namespaces need.
    probe = subprocess.run(["unshare", "--mount", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        detail = _last_line(probe.stderr)
        return f"unshare --mount failed ({detail}): run with CAP_SYS_ADMIN (a privileged container)"
    return None


def wanted_versions() -> dict[str, str]:
    """numpy, onnxruntime and what they require on aarch64, each at the version the host has.

    Pinning to the host's versions makes an x86-versus-arm64 comparison compare the same code.
    """
    from packaging.requirements import Requirement

    # Requirements are evaluated as the target sees them, not as this host does.
    target = {"platform_machine": "aarch64", "python_version": "3.11", "extra": ""}
    pins: dict[str, str] = {}
    pending = list(_ROOTS)
    while pending:
        name = pending.pop(0)
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in pins:
            continue
        try:
            pins[key] = importlib.metadata.version(name)
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError as exc:
            raise TargetError(
                f"{name} is not installed in {sys.executable}; the arm64 environment copies the"
                " host's versions: pip install -e . first"
            ) from exc
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate(target):
                pending.append(requirement.name)
    return pins


def find_mirror(apt_dir: Path = Path("/etc/apt")) -> str:
    """The first Debian mirror this machine's apt sources use for the target suite.

    `$EDGEREC_ARM64_MIRROR` overrides it. Both the one-line (`.list`) and the deb822 (`.sources`)
    formats are read, in the order apt reads them.
    """
    override = os.environ.get(MIRROR_VARIABLE)
    if override:
        return override

    parts = apt_dir / "sources.list.d"
    candidates = [apt_dir / "sources.list"]
    if parts.is_dir():
        candidates += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))

    for path in candidates:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        entries = _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
        for uri, suites in entries:
            if SUITE in suites:
                return uri
    raise TargetError(
        f"no apt source for Debian {SUITE} in {apt_dir}: set {MIRROR_VARIABLE} to a Debian mirror"
    )


def setup(root: Path | None = None, *, force: bool = False) -> Arm64Env:
    """Build the environment at `root` (default: `default_root()`) unless a current one is there.

    A build happens in a temporary folder beside `root` and is renamed into place when complete,
    so an interrupted build never looks ready. An environment built for other numpy/onnxruntime
    versions than the host's is rebuilt.
    """
    root = Path(root or default_root()).expanduser().absolute()
    env = Arm64Env(root)
    wanted = wanted_versions()
    if env.is_ready() and not force:
        held = env.manifest().get("packages")
        if held == wanted:
            logger.debug("arm64 environment at %s is ready", root)
            return env
        logger.info("arm64 environment at %s holds %s, the host %s: rebuilding", root, held, wanted)

    reason = unavailable_reason(build=True)
    if reason:
        raise TargetError(reason)
    # The old root is deleted once the new one is in place: never delete what is not ours.
    if root.exists() and not (root.is_dir() and (env.manifest_path.is_file() or _empty(root))):
        raise TargetError(
            f"{root} exists and is no arm64 environment: remove it or set {HOME_VARIABLE} elsewhere"
        )
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)

    started = time.monotonic()
    build = Path(tempfile.mkdtemp(prefix=f".{root.name}.build-{os.getpid()}-", dir=root.parent))
    try:
        _build(Arm64Env(build), wanted)
        _swap_in(build, root)
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    logger.info("arm64 environment ready at %s (%.0f s)", root, time.monotonic() - started)
    return env


def run_python(
    env: Arm64Env,
    args: Sequence[str],
    *,
    extra_path: Sequence[Path] = (),
    cwd: Path | str | None = None,
    timeout: float | None = None,
    env_vars: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the emulated python3.11 with `args`; its stdout and stderr come back as text.

    PYTHONPATH is `extra_path` followed by the wheels; `env_vars` are set last, over the clean
    environment the interpreter gets. A non-zero exit is returned, not raised; running past
    `timeout` seconds raises `TargetError`.
    """
    env = Arm64Env(Path(env.root).absolute())  # `cwd` must not change what the paths mean
    if not env.python.is_file():
        raise TargetError(f"no arm64 environment at {env.root}: {_FIX_ENV}")
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise TargetError(f"{QEMU} not found: {_FIX_HOST_TOOLS}")

    search = [Path(p).absolute() for p in extra_path] + [env.site]
    command = [
        "unshare", "--mount", "--", "/bin/sh", "-c", _LAUNCHER, "edgerec-arm64", str(env.cpuinfo),
        qemu, "-L", str(env.sysroot), str(env.python), *args,
    ]  # fmt: skip
    logger.debug("emulated: python %s", _shorten(args))

    try:
        return subprocess.run(
            command,
            cwd=cwd,
            env=_child_environment(search, env_vars),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TargetError(f"emulated python ran past {timeout:g} s: {_shorten(args)}") from exc


def machine_info(env: Arm64Env) -> dict:
    """What the emulated interpreter reports about itself, with `emulated: True`."""
    result = run_python(env, ["-c", _PROBE], timeout=600)
    if result.returncode != 0:
        raise TargetError(
            f"the emulated python {_describe_exit(result.returncode)}: {_last_line(result.stderr)}"
        )
    info = json.loads(result.stdout.strip().splitlines()[-1])
    return {**info, "qemu_cpu": QEMU_CPU, "emulated": True}


def install_host_tools() -> bool:
    """apt-get install qemu-user-static and debootstrap if either is missing; True if apt ran."""
    missing = [tool for tool in (QEMU, "debootstrap") if shutil.which(tool) is None]
    if not missing:
        return False
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise TargetError(
            f"{', '.join(missing)} not found and cannot install it here: {_FIX_HOST_TOOLS}"
        )

    apt_env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    logger.info("%s missing: apt-get update", ", ".join(missing))
    _check_call(["apt-get", "update"], what="apt-get update", env=apt_env)
    logger.info("apt-get install -y %s", " ".join(HOST_PACKAGES))
    _check_call(["apt-get", "install", "-y", *HOST_PACKAGES], what="apt-get install", env=apt_env)
    return True


def _build(env: Arm64Env, wanted: dict[str, str]) -> None:
    """Fill `env.root`, which is empty, with a complete environment."""
    _bootstrap(env.sysroot, find_mirror())
    _install_wheels(env.site, wanted)
    env.cpuinfo.write_text(_cpuinfo_text(os.cpu_count() or 1))

    logger.info("checking the emulated interpreter")
    started = time.monotonic()
    info = machine_info(env)
    logger.debug("emulated import of numpy and onnxruntime took %.1f s", time.monotonic() - started)
    found = {"numpy": info["numpy"], "onnxruntime": info["onnxruntime"]}
    expected = {name: wanted[name] for name in found}
    if info["machine"] != "aarch64" or found != expected:
        raise TargetError(f"the built environment reports {info}, expected aarch64 with {expected}")

    manifest = {
        "format": MANIFEST_FORMAT,
        "built": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "suite": SUITE,
        "python": info["python"],
        "qemu": _qemu_version(),
        "qemu_cpu": QEMU_CPU,
        "packages": wanted,
    }
    env.manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")


def _bootstrap(sysroot: Path, mirror: str) -> None:
    """Unpack Debian arm64 with python3.11 into `sysroot`, without running any of it."""
    logger.info("debootstrap: Debian %s arm64 with %s from %s", SUITE, PYTHON, mirror)
    started = time.monotonic()
    _check_call(
        [
            "debootstrap", "--foreign", "--arch=arm64", "--variant=minbase",
            f"--include={PYTHON}", SUITE, str(sysroot), mirror,
        ],
        what="debootstrap",
    )  # fmt: skip
    logger.debug("debootstrap took %.0f s", time.monotonic() - started)

    # The first stage unpacks only the essential packages; the rest (python3.11 and its libraries)
    # wait in the apt cache for a second stage that would have to run under emulation. Unpacking
    # every .deb ourselves is enough, since the interpreter needs no maintainer script to run.
    debs = sorted((sysroot / "var" / "cache" / "apt" / "archives").glob("*.deb"))
    logger.info("unpacking %d packages", len(debs))
    for deb in debs:
        _check_call(["dpkg-deb", "--extract", str(deb), str(sysroot)], what=f"unpacking {deb.name}")
        deb.unlink()
    shutil.rmtree(sysroot / "debootstrap", ignore_errors=True)

    # Nothing here runs apt or reads a manual: package lists, docs and translations are ~100 MB.
    for unused in ("var/lib/apt/lists", "usr/share/doc", "usr/share/man", "usr/share/locale"):
        shutil.rmtree(sysroot / unused, ignore_errors=True)

    if not (sysroot / "usr" / "bin" / PYTHON).is_file():
        raise TargetError(f"debootstrap from {mirror} left no /usr/bin/{PYTHON} in {sysroot}")


def _install_wheels(site: Path, wanted: dict[str, str]) -> None:
    """Download the aarch64 wheels of the pinned packages and unzip them into `site`."""
    wheels = site.parent / "wheels"
    specs = [f"{name}=={version}" for name, version in wanted.items()]
    logger.info("pip download (aarch64): %s", " ".join(specs))
    _check_call(
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--only-binary=:all:", "--python-version", "3.11", "--implementation", "cp",
            "--platform", _WHEEL_PLATFORM, "--dest", str(wheels), *specs,
        ],
        what="pip download",
    )  # fmt: skip

    # Installing is unzipping: nothing here has entry points or scripts the runtime needs.
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(site)
    shutil.rmtree(wheels)


def _swap_in(build: Path, root: Path) -> None:
    """Move the finished `build` to `root`, replacing whatever was there."""
    old = root.with_name(f".{root.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if root.exists():
        root.rename(old)
    build.rename(root)
    shutil.rmtree(old, ignore_errors=True)


def _remove_abandoned(root: Path) -> None:
    """Delete the temporary folders of builds whose process is gone (killed, power lost)."""
    for path in root.parent.glob(f".{root.name}.*-*"):
        found = re.fullmatch(rf"\.{re.escape(root.name)}\.(?:build|old)-(\d+)(?:-.*)?", path.name)
        if found and not _alive(int(found.group(1))):
            logger.info("removing %s, left by an interrupted build", path)
            shutil.rmtree(path, ignore_errors=True)


def _empty(folder: Path) -> bool:
    return next(folder.iterdir(), None) is None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _child_environment(search: list[Path], extra: Mapping[str, str] | None) -> dict[str, str]:
    """A clean environment for the emulated interpreter.

    The host's PYTHONHOME, PYTHONPATH or VIRTUAL_ENV point at x86 files it must not pick up, so
    only what the launcher itself needs is passed on.
    """
    child = {key: os.environ[key] for key in ("PATH", "HOME", "TMPDIR") if key in os.environ}
    child.update(
        LANG="C.UTF-8",
        PYTHONNOUSERSITE="1",
        PYTHONPATH=os.pathsep.join(str(p) for p in search),
        QEMU_CPU=QEMU_CPU,
    )
    child.update(extra or {})
    return child


def _cpuinfo_text(processors: int) -> str:
    """/proc/cpuinfo as a Linux kernel on Neoverse-N1 cores writes it.

    onnxruntime's CPU detection parses this file; under qemu it would read the host's x86 one and
    crash (SIGSEGV), since qemu 7 passes /proc/cpuinfo through unchanged.
    """
    # Limitation: the processor count is the building machine's, because the file is written
    # once at setup; elsewhere onnxruntime may size its thread pool differently (results agree).
    block = (
        "processor\t: {n}\n"
        "BogoMIPS\t: 50.00\n"
        "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid"
        " asimdrdm lrcpc dcpop asimddp ssbs\n"
        "CPU implementer\t: 0x41\n"
        "CPU architecture: 8\n"
        "CPU variant\t: 0x3\n"
        "CPU part\t: 0xd0c\n"
        "CPU revision\t: 1\n\n"
    )
    return "".join(block.format(n=n) for n in range(processors))


def _one_line_entries(text: str) -> Iterator[tuple[str, set[str]]]:
    """(URI, {suite}) of each `deb [options] URI suite components` line."""
    for line in text.splitlines():
        found = re.match(r"deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line.split("#", 1)[0].strip())
        if found:
            yield found.group(1), {found.group(2)}


def _deb822_entries(text: str) -> Iterator[tuple[str, set[str]]]:
    """(URI, suites) of each enabled `Types: deb` stanza of a deb822 `.sources` file."""
    for stanza in re.split(r"\n[ \t]*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes") != "no":
            for uri in fields.get("uris", "").split():
                yield uri, set(fields.get("suites", "").split())


def _check_call(command: list[str], *, what: str, env: Mapping[str, str] | None = None) -> None:
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        detail = _last_line(result.stderr, result.stdout)
        raise TargetError(f"{what} {_describe_exit(result.returncode)}: {detail}")


def _qemu_version() -> str:
    result = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=False)
    first = result.stdout.splitlines()[0] if result.stdout else ""
    found = re.search(r"version (\S+)", first)
    return found.group(1) if found else first


def _describe_exit(returncode: int) -> str:
    if returncode < 0:
        return f"was killed by {signal.Signals(-returncode).name}"
    return f"failed (exit {returncode})"


def _shorten(args: Sequence[str]) -> str:
    """The command line for a log or an error: one line, at most 60 characters."""
    shown = shlex.join(args).splitlines()[0] if args else ""
    return shown if len(shown) <= 60 else shown[:57] + "..."


def _last_line(*texts: str) -> str:
    """The last non-blank line of the first of `texts` that has one, cut to 200 characters."""
    for text in texts:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1][:200]
    return "no output"


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgerec.targets.arm64",
        description="Build the emulated AArch64 environment edgerec checks exports in.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("setup", help="build the environment unless a current one exists")
    build.add_argument("--root", type=Path, help=f"where (default ${HOME_VARIABLE} or ~/.cache)")
    build.add_argument("--force", action="store_true", help="rebuild even if one is ready")
    build.add_argument("--no-apt", action="store_true", help="never apt-get install host tools")
    info = commands.add_parser("info", help="print what the emulated interpreter reports, as JSON")
    info.add_argument("--root", type=Path, help=f"where (default ${HOME_VARIABLE} or ~/.cache)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    try:
        if args.command == "info":
            print(json.dumps(machine_info(Arm64Env(args.root or default_root()))))
            return 0
        if not args.no_apt:
            install_host_tools()
        env = setup(args.root, force=args.force)
    except EdgerecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(env.root)
    return 0


if __name__ == "__main__":
    # Run the copy imported under the package name, so that log records name this module and not
    # `__main__`, as they do when the library is imported.
    from edgerec.targets.arm64 import _main as main

    sys.exit(main())
