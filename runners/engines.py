"""The engines the Beam modes start (Flink's JVMs, Beam's Flink job server), fetched from package registries only,
pinned in engines/, verified, and cached outside the checkout.

    python -m runners.engines fetch [flink] [seaweedfs]    `make engines` fetches flink (.ci/run too),
                                                        make test-full seaweedfs as well
    python -m runners.engines where            the cache folders
    python -m runners.engines lock flink       rewrite engines/flink/job-server/*.sha256 (maintainers)

Flink's distribution comes from PyPI (engines/flink/requirements.txt, `pip download --require-hashes`: the
apache-flink wheel's bin/ and conf/, the apache-flink-libraries sdist's lib/, opt/ and plugins/ form a
FLINK_HOME; nothing is installed or imported). Beam's Flink job server is the runner library and its dependencies
from Maven Central, shaded into one jar as Beam builds it (engines/flink/job-server/pom.xml), every input jar
checked against jars.sha256 and the built jar against job-server.sha256: a jar missing, added or changed is an
error naming it. A folder is renamed into the cache
only once all of it is verified, so a cache folder is complete or absent. Runs never download: they find the
cache or say to run `make engines`.

ENGINES_DIR moves the cache (default ~/.cache/eat-tf2-tfx/engines; Maven keeps its own in ~/.m2).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Dict, Iterator, Optional, Tuple

from core.layout import PROJECT_ROOT, sha256_file

PINS = PROJECT_ROOT / "engines"
FLINK_PINS = PINS / "flink"
MARKER = ".verified"  # holds the sha256 of the pins a folder was built from


class EngineError(RuntimeError):
    """An engine is missing, unverifiable or cannot run here; the message says what to do."""


def cache_dir(env: Optional[Dict[str, str]] = None) -> Path:
    env = os.environ if env is None else env
    if env.get("ENGINES_DIR"):
        return Path(env["ENGINES_DIR"]).expanduser().resolve()
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "eat-tf2-tfx" / "engines"


@dataclasses.dataclass(frozen=True)
class FlinkPins:
    flink_version: str  # the distribution's, e.g. 1.19.3
    runner_artifact: str  # beam-runners-flink-1.19
    beam_java_version: str  # the job server's Beam release, e.g. 2.62.0

    @property
    def runner_flink_minor(self) -> str:
        """The Flink minor version the job server's runner is built for (its artifact name says it)."""
        return self.runner_artifact.rsplit("-", 1)[1]

    @property
    def job_server_jar_name(self) -> str:
        return f"{self.runner_artifact}-job-server-{self.beam_java_version}.jar"

    @property
    def flink_lib_jar_name(self) -> str:
        return f"{self.runner_artifact}-job-server-{self.beam_java_version}-flink-lib.jar"

    def home(self, cache: Path) -> Path:
        return cache / f"flink-{self.flink_version}"

    def job_server(self, cache: Path) -> Path:
        return cache / f"{self.runner_artifact}-job-server-{self.beam_java_version}"


def flink_pins(pins: Path = FLINK_PINS) -> FlinkPins:
    requirements = (pins / "requirements.txt").read_text()
    pom = (pins / "job-server" / "pom.xml").read_text()
    flink = re.search(r"^apache-flink==(\S+)", requirements, re.M)
    runner = re.search(r"<artifactId>(beam-runners-flink-[\d.]+)</artifactId>\s*<version>([^<]+)</version>", pom)
    if not flink or not runner:
        raise EngineError(
            f"{pins}: no apache-flink==<version> in requirements.txt or no beam-runners-flink-<v> "
            f"dependency in job-server/pom.xml"
        )
    return FlinkPins(flink.group(1), runner.group(1), runner.group(2))


def _digest(*paths: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _verified(folder: Path, pins_digest: str) -> bool:
    marker = folder / MARKER
    return marker.is_file() and marker.read_text().strip() == pins_digest


def _home_pins() -> tuple:
    return (FLINK_PINS / "requirements.txt",)


def _job_server_pins() -> tuple:
    folder = FLINK_PINS / "job-server"
    return folder / "pom.xml", folder / "jars.sha256", folder / "job-server.sha256"


def flink_home(cache: Optional[Path] = None) -> Path:
    """The verified FLINK_HOME in the cache, or an error saying how to fetch it."""
    pins = flink_pins()
    home = pins.home(cache or cache_dir())
    if not _verified(home, _digest(*_home_pins())):
        raise EngineError(
            f"Flink {pins.flink_version} is not in the engine cache ({home}): run `make engines` "
            f"(it downloads it from PyPI, pinned in engines/flink/requirements.txt), or set "
            f"ENGINES_DIR to where it was fetched"
        )
    return home


def job_server_jars(cache: Optional[Path] = None) -> Tuple[Path, Path]:
    """(the job server's jar, the jar for the cluster's lib/), verified, or an error saying how to fetch them."""
    pins = flink_pins()
    folder = pins.job_server(cache or cache_dir())
    jars = folder / pins.job_server_jar_name, folder / pins.flink_lib_jar_name
    if not _verified(folder, _digest(*_job_server_pins())) or not all(j.is_file() for j in jars):
        raise EngineError(
            f"Beam's Flink job server ({pins.runner_artifact} {pins.beam_java_version}) is not in the "
            f"engine cache ({folder}): run `make engines` (it copies the jars from Maven Central, "
            f"pinned in engines/flink/job-server/), or set ENGINES_DIR to where it was fetched"
        )
    return jars


def java(env: Optional[Dict[str, str]] = None) -> str:
    """The `java` Flink's scripts and the job server will run: JAVA_HOME's, else PATH's."""
    env = os.environ if env is None else env
    if env.get("JAVA_HOME"):
        candidate = Path(env["JAVA_HOME"]) / "bin" / "java"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        raise EngineError(
            f"JAVA_HOME={env['JAVA_HOME']} has no bin/java: set JAVA_HOME to a JDK or JRE 11 or 17 "
            f"(Flink 1.19 runs on those), or unset it to use the `java` on PATH"
        )
    found = shutil.which("java", path=env.get("PATH"))
    if not found:
        raise EngineError(
            "BEAM=flink needs Java 11 or 17 (Flink's JVMs and Beam's job server): no `java` on PATH "
            "and JAVA_HOME is not set; install a JDK (e.g. apt install openjdk-17-jdk-headless) or set "
            "JAVA_HOME"
        )
    return found


# ---- fetching ----


@contextlib.contextmanager
def _new_folder(final: Path, pins_digest: str) -> Iterator[Path]:
    """A folder beside `final` to fill; renamed to `final`, with the pins' marker, only when the block succeeds,
    else removed: a cache folder is complete or absent."""
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{final.name}.partial-", dir=final.parent))
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    (partial / MARKER).write_text(pins_digest + "\n")
    if final.exists():  # an unverified leftover (older pins, or an interrupted fetch before the marker)
        shutil.rmtree(final)
    partial.rename(final)


def _run(argv, what: str, log: Callable[[str], None], cwd: Optional[Path] = None) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        raise EngineError(f"{what} needs `{argv[0]}` on PATH") from None
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise EngineError(f"{what} failed (exit {proc.returncode}): {' '.join(map(str, argv))}\n{tail}")


def fetch_flink_home(cache: Path, log: Callable[[str], None] = print) -> Path:
    pins = flink_pins()
    final, digest = pins.home(cache), _digest(*_home_pins())
    if _verified(final, digest):
        log(f"[engines] Flink {pins.flink_version}: {final} (verified earlier)")
        return final
    with _new_folder(final, digest) as partial:
        downloads = partial / ".downloads"
        log(f"[engines] Flink {pins.flink_version}: downloading from PyPI (about 235 MB, hashes pinned)")
        # --no-build-isolation: pip reads the sdist's metadata with this environment's setuptools instead of
        # fetching a build backend; the sdist is unpacked below, never built or installed
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--require-hashes",
                "--no-build-isolation",
                "--only-binary",
                "apache-flink",
                "--disable-pip-version-check",
                "-q",
                "-d",
                str(downloads),
                "-r",
                str(FLINK_PINS / "requirements.txt"),
            ],
            "pip download of Flink",
            log,
        )
        wheel = next(downloads.glob("apache_flink-*.whl"))
        sdist = next(downloads.glob("apache-flink-libraries-*.tar.gz"))
        with zipfile.ZipFile(wheel) as zf:
            for name in zf.namelist():
                parts = name.split("/")
                if len(parts) > 2 and parts[0] == "pyflink" and parts[1] in ("bin", "conf") and parts[-1]:
                    target = partial / "/".join(parts[1:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(zf.read(name))
        with tarfile.open(sdist) as tf:
            for member in tf.getmembers():
                parts = member.name.split("/")
                if (
                    len(parts) > 3
                    and parts[1] == "deps"
                    and parts[2] in ("bin", "lib", "opt", "plugins")
                    and member.isfile()
                ):
                    target = partial / "/".join(parts[2:])
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tf.extractfile(member) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst)
        for script in (partial / "bin").iterdir():
            if script.suffix == ".sh" or script.name in ("flink", "pyflink-shell.sh"):
                script.chmod(0o755)
        dist = list((partial / "lib").glob(f"flink-dist-{pins.flink_version}.jar"))
        if not dist or not (partial / "bin" / "jobmanager.sh").is_file():
            raise EngineError(
                f"the Flink {pins.flink_version} packages did not hold bin/jobmanager.sh and "
                f"lib/flink-dist-{pins.flink_version}.jar"
            )
        shutil.rmtree(downloads)
        log(f"[engines] Flink {pins.flink_version}: {final}")
    return final


def read_lock(lock: Path) -> Dict[str, str]:
    entries = {}
    for number, line in enumerate(lock.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, _, name = line.strip().partition("  ")
        if not re.fullmatch(r"[0-9a-f]{64}", digest) or not name:
            raise EngineError(f"{lock}, line {number}: expected '<sha256>  <file name>', got {line!r}")
        entries[name] = digest
    return entries


def verify_jars(folder: Path, lock: Path) -> None:
    """Every jar the lock names is in `folder` with its sha256, and nothing else is."""
    expected = read_lock(lock)
    found = {p.name for p in folder.glob("*.jar")}
    missing, extra = sorted(set(expected) - found), sorted(found - set(expected))
    if missing or extra:
        raise EngineError(
            f"{folder}: the jars differ from {lock}: missing {missing[:5]}, not pinned {extra[:5]}"
            f"{' ...' if len(missing) > 5 or len(extra) > 5 else ''}"
        )
    for name in sorted(expected):
        actual = sha256_file(folder / name)
        if actual != expected[name]:
            raise EngineError(f"{folder / name}: sha256 {actual}, but {lock} pins {expected[name]}")


def _build_job_server(build: Path, log: Callable[[str], None]) -> list:
    """Copies the pinned dependencies into build/dependencies and shades them into the job server's jar (as Beam
    builds it) and the cluster's lib jar (the same less Flink's own classes); returns both."""
    _run(
        [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(FLINK_PINS / "job-server" / "pom.xml"),
            "dependency:copy-dependencies",
            "package",
            f"-Dengine.build={build}",
        ],
        "mvn (Beam's Flink job server)",
        log,
    )
    pins = flink_pins()
    return [build / pins.job_server_jar_name, build / pins.flink_lib_jar_name]


def fetch_job_server(cache: Path, log: Callable[[str], None] = print) -> Path:
    pins = flink_pins()
    final, digest = pins.job_server(cache), _digest(*_job_server_pins())
    if _verified(final, digest):
        log(f"[engines] Beam's Flink job server: {final} (verified earlier)")
        return final
    with _new_folder(final, digest) as partial:
        log(
            f"[engines] Beam's Flink job server ({pins.runner_artifact} {pins.beam_java_version}): its jars from "
            f"Maven Central (about 150 MB; Maven keeps them in ~/.m2), shaded into one"
        )
        jars = _build_job_server(partial / "build", log)
        verify_jars(partial / "build" / "dependencies", FLINK_PINS / "job-server" / "jars.sha256")
        expected = read_lock(FLINK_PINS / "job-server" / "job-server.sha256")
        for jar in jars:
            actual = sha256_file(jar)
            if expected.get(jar.name) != actual:
                raise EngineError(
                    f"{jar.name}, built from the verified jars: sha256 {actual}, but "
                    f"engines/flink/job-server/job-server.sha256 pins {expected.get(jar.name)}"
                )
            jar.rename(partial / jar.name)
        shutil.rmtree(partial / "build")
        log(
            f"[engines] Beam's Flink job server: {final} (its {len(read_lock(_job_server_pins()[1]))} jars and the "
            f"{len(jars)} jars built from them verified)"
        )
    return final


def lock_job_server(log: Callable[[str], None] = print) -> Path:
    """Resolves the pom afresh and writes every dependency's sha256 into jars.sha256, the built jar's into
    job-server.sha256."""
    folder = FLINK_PINS / "job-server"
    with tempfile.TemporaryDirectory() as tmp:
        jars = _build_job_server(Path(tmp), log)
        lines = [f"{sha256_file(p)}  {p.name}" for p in sorted((Path(tmp) / "dependencies").glob("*.jar"))]
        (folder / "jars.sha256").write_text("\n".join(lines) + "\n")
        (folder / "job-server.sha256").write_text("".join(f"{sha256_file(j)}  {j.name}\n" for j in jars))
    log(f"[engines] {folder}: jars.sha256 ({len(lines)} jars), job-server.sha256")
    return folder


def fetch_flink(cache: Optional[Path] = None, log: Callable[[str], None] = print) -> Dict[str, Path]:
    cache = cache or cache_dir()
    return {"flink_home": fetch_flink_home(cache, log), "job_server": fetch_job_server(cache, log)}


SEAWEEDFS_PINS = PINS / "seaweedfs" / "pins"


def _seaweedfs_pins() -> Dict[str, str]:
    return dict(
        line.split("=", 1)
        for line in SEAWEEDFS_PINS.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )


def seaweedfs_binary(cache: Optional[Path] = None) -> Path:
    """The verified `weed` binary in the cache, or an error saying how to build it."""
    pins = _seaweedfs_pins()
    folder = (cache or cache_dir()) / f"seaweedfs-{pins['weed_version']}"
    if not _verified(folder, _digest(SEAWEEDFS_PINS)) or not (folder / "weed").is_file():
        raise EngineError(
            f"SeaweedFS {pins['weed_version']} is not in the engine cache ({folder}): run "
            f"`python -m runners.engines fetch seaweedfs` (make test-full does; it builds it from the Go module "
            f"proxy, pinned in engines/seaweedfs/pins, about 10 minutes the first time), or set ENGINES_DIR"
        )
    return folder / "weed"


def fetch_seaweedfs(cache: Optional[Path] = None, log: Callable[[str], None] = print) -> Dict[str, Path]:
    """Builds SeaweedFS's `weed` from the Go module proxy: the module's sum checked against the pin first."""

    cache = cache or cache_dir()
    pins, digest = _seaweedfs_pins(), _digest(SEAWEEDFS_PINS)
    final = cache / f"seaweedfs-{pins['weed_version']}"
    if _verified(final, digest) and (final / "weed").is_file():
        log(f"[engines] SeaweedFS {pins['weed_version']}: {final} (verified earlier)")
        return {"seaweedfs": final / "weed"}
    if not shutil.which("go"):
        raise EngineError("SeaweedFS is built from the Go module proxy: `go` (1.26) is not on PATH")
    module = f"{pins['module']}@{pins['version']}"
    log(f"[engines] SeaweedFS {pins['weed_version']}: {module} from the Go module proxy, built here (minutes)")
    env = dict(os.environ, GOFLAGS="-mod=readonly", GOTOOLCHAIN="local", CGO_ENABLED="0")
    proc = subprocess.run(["go", "mod", "download", "-json", module], capture_output=True, text=True, env=env)
    info = json.loads(proc.stdout or "{}")
    if proc.returncode != 0 or info.get("Error"):
        raise EngineError(f"go mod download {module} failed: {info.get('Error') or proc.stderr.strip()[-500:]}")
    if info.get("Sum") != pins["sum"]:
        raise EngineError(f"{module}: module sum {info.get('Sum')} is not the pinned {pins['sum']}")
    with _new_folder(final, digest) as partial:
        source = partial / "src"
        shutil.copytree(info["Dir"], source)  # the module cache is read-only; go build writes beside go.mod
        for path in [source, *source.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        proc = subprocess.run(
            ["go", "build", "-trimpath", "-buildvcs=false", "-o", str(partial / "weed"), "./weed"],
            cwd=source,
            capture_output=True,
            text=True,
            env=env,
        )
        if proc.returncode != 0:
            raise EngineError(f"building SeaweedFS failed:\n{(proc.stdout + proc.stderr).strip()[-1500:]}")
        shutil.rmtree(source)
        version = subprocess.run([str(partial / "weed"), "version"], capture_output=True, text=True).stdout
        if pins["weed_version"] not in version:
            raise EngineError(f"the built weed says {version.strip()!r}, not version {pins['weed_version']}")
    log(f"[engines] SeaweedFS: {final / 'weed'} ({version.strip()})")
    return {"seaweedfs": final / "weed"}


# `make engines` (and so make test) fetches flink; seaweedfs is for make test-full's store tests
ENGINES = {"flink": fetch_flink, "seaweedfs": fetch_seaweedfs}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="fetch and verify engines into the cache")
    fetch.add_argument("engines", nargs="*", help=f"of {', '.join(sorted(ENGINES))} (default: flink)")
    sub.add_parser("where", help="print the cache folders")
    lock = sub.add_parser("lock", help="rewrite an engine's pinned sha256 list from a fresh resolution")
    lock.add_argument("engine", choices=["flink"])
    args = parser.parse_args(argv)
    unknown = sorted(set(getattr(args, "engines", None) or ()) - set(ENGINES))
    if unknown:
        parser.error(f"no engine {', '.join(unknown)} (there are: {', '.join(sorted(ENGINES))})")
    try:
        if args.command == "fetch":
            for name in args.engines or ["flink"]:
                ENGINES[name]()
        elif args.command == "where":
            pins, cache = flink_pins(), cache_dir()
            print(f"cache       {cache}\nflink home  {pins.home(cache)}\njob server  {pins.job_server(cache)}")
        else:
            lock_job_server()
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
