"""The GPU run: prepared here, run on a GPU machine in a few calls, rehearsed on this CPU.

    python -m loadtest.gpu_run prepare     # wheels derived from the lock, parts under .whl/, one script per call
    python -m loadtest.gpu_run rehearse    # the same parts and scripts on this CPU (tiny preset, --device cpu)
    python -m loadtest.gpu_run collect DIR [DIR...]   # returned files -> docs/results/<date>-<gpu>/

On the GPU machine each call runs ``bash .whl/pN/run.sh`` (docs/benchmarks.md, "The GPU run").

**What travels.** The GPU machine has Python, torch's CUDA build and the packages listed in the one
``docs/gpu-machine-packages-<date>.txt``, and no network. ``prepare`` takes every package
``container/requirements.lock`` pins for that Python on Linux x86-64, plus the load tool and the test
runner (``locust``, ``pytest``, ``matplotlib`` at the pyproject's ``test`` pins, resolved by pip against the
lock), and keeps the closure of what the run needs (the project's dependencies but ``boto3``: see
``NOT_CARRIED``). Of that it carries, as wheels, what the machine lacks, and what it has at another
version where the package is one the project pins exactly (transformers) or where a carried package's
requirement excludes the machine's version; torch's own build (torch, triton, nvidia-*, cuda-*) is
always the machine's. Ray's wheel travels without ``ray/jars`` (Java workers), which the container
image removes as well (container/Dockerfile).

**Parts.** A call carries at most 64 MiB with the working tree, so the wheels go in parts
(``.whl/p1``, ``.whl/p2``, ...), each under that limit less the tree; a wheel larger than what is left
in a part (Ray's) is cut into chunks that are joined again on the machine. Part 1 holds whole every
wheel the model-path phases need, so call 1 runs those phases on its own; the last call needs every
part. Each part carries the same ``manifest.json`` (sha256 of every file of every part, of every wheel
as joined, the commit, the target); a call stashes its part in the machine's ``/tmp``, checks that
every part it needs is there (a machine that was given back between two calls has lost the earlier
parts: the call says which and stops before spending time), joins and installs the wheels it can
(``pip install --no-index --no-deps --target``), imports every module its phases import, then runs its
phases in a fixed order. Each phase has a time budget checked before it starts (skipped, with the
reason, when the call's time left is shorter) and enforced while it runs; its JSON and Markdown are
written to ``$OUT`` the moment it ends, whatever the outcome, so a timeout or a crash still returns
what was measured (at most 8 files per call).

**The rehearsal** builds the same parts from the lock for this machine's Python (the same derivation
code), installs them over a fresh virtual environment that holds only what the GPU machine holds (the
CPU build of torch standing in for its CUDA build, the machine's packages at their listed versions), and
runs the same call scripts with ``--rehearsal``: every phase on ``--device cpu``, the tiny preset, a small
size, ``HF_HUB_OFFLINE=1``, and nothing of the project's own environment on the path.

This module imports only the standard library at import time: on the GPU machine it runs before
anything is installed (``packaging`` is imported by ``prepare``/``rehearse`` only).
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
LOCK = REPO_ROOT / "container" / "requirements.lock"
PYPROJECT = REPO_ROOT / "pyproject.toml"
PARTS_DIR = REPO_ROOT / ".whl"
MIB = 2**20
CARRY_LIMIT = 64 * MIB  # the working tree and what a call carries, together
CARRY_MARGIN = 2 * MIB  # kept free: the tree may grow a little between prepare and the calls
CALL_LIMIT_S = 600  # one command on the GPU machine
CALL_RESERVE_S = 25  # what a call keeps for writing its files and stopping its children
MACHINE_WORK = "/tmp/sdturbo-gpu-run"
MANIFEST = "manifest.json"

# The load tool and the test runner the run drives; pins from the pyproject's `test` extra.
RUN_TOOLS = ("locust", "pytest", "matplotlib")
# Project dependencies the run never imports, left out with their exclusive dependencies.
NOT_CARRIED = {"boto3": "imported only for S3 delivery (serve_app/storage.py), which the run does not configure"}
# The project dependencies (and their closure) the model-path phases import: they travel whole in
# part 1, so that call 1 runs those phases without any other part.
MODEL_ROOTS = ("diffusers", "transformers", "accelerate", "safetensors", "pillow", "pydantic", "pydantic-settings")
# Paths left out of a wheel for the journey: what the container image deletes after installing it.
TRIMMED = {"ray": ("ray/jars/",)}
# torch's own build: always the machine's (the point of the machine), whatever the lock pins.
MACHINE_BUILD = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
# The GPU machine's glibc is at least 2.28 (its torch wheel is manylinux_2_28); nothing newer is assumed.
GPU_PLATFORMS = tuple(f"manylinux_2_{n}_x86_64" for n in range(28, 4, -1)) + (
    "manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64")


def canon(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def log(msg: str) -> None:
    print(msg, flush=True)


# =============================================================================================
# 1. What the GPU machine holds, and the interpreter a wheel set is for
# =============================================================================================

@dataclass(frozen=True)
class MachinePackages:
    path: Path
    python: str  # full version, e.g. 3.12.3
    torch: str
    versions: dict[str, str | None]  # canonical name -> listed version (None: listed without one)


def machine_packages_file(docs: Path = REPO_ROOT / "docs") -> Path:
    found = sorted(docs.glob("gpu-machine-packages-*.txt"))
    if len(found) != 1:
        raise SystemExit(f"expected exactly one docs/gpu-machine-packages-<date>.txt, found {[p.name for p in found]}")
    return found[0]


def read_machine_packages(path: Path | None = None) -> MachinePackages:
    path = path or machine_packages_file()
    header: dict[str, str] = {}
    versions: dict[str, str | None] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep and key.strip() in ("python", "torch"):
                header[key.strip()] = value.strip()
            continue
        if line:
            name, _, version = line.partition("==")
            versions[canon(name)] = version or None
    return MachinePackages(path, header["python"], header["torch"], versions)


@dataclass(frozen=True)
class Target:
    """The interpreter a wheel set is for: its Python version and the platform tags it accepts."""

    python_full: str
    platforms: tuple[str, ...]

    @property
    def python(self) -> str:
        return ".".join(self.python_full.split(".")[:2])

    @property
    def label(self) -> str:
        return f"cp{self.python.replace('.', '')}-{self.platforms[0]}"

    def marker_env(self) -> dict[str, str]:
        return {"python_version": self.python, "python_full_version": self.python_full, "sys_platform": "linux",
                "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
                "platform_python_implementation": "CPython", "implementation_name": "cpython",
                "implementation_version": self.python_full, "platform_release": "", "platform_version": ""}

    def pip_args(self) -> list[str]:
        args = ["--only-binary=:all:", "--python-version", self.python, "--implementation", "cp"]
        for p in self.platforms:
            args += ["--platform", p]
        return args

    def as_dict(self) -> dict[str, Any]:
        return {"python": self.python_full, "platforms": list(self.platforms)}


def gpu_target(machine: MachinePackages) -> Target:
    return Target(machine.python, GPU_PLATFORMS)


def host_target() -> Target:
    """This interpreter (the rehearsal's): its version and the manylinux tags it accepts."""
    from packaging import tags

    platforms: list[str] = []
    for tag in tags.sys_tags():
        if tag.platform not in platforms and tag.platform.startswith("manylinux"):
            platforms.append(tag.platform)
    v = sys.version_info
    return Target(f"{v.major}.{v.minor}.{v.micro}", tuple(platforms))


# =============================================================================================
# 2. The wheel set: the lock (and the run's tools) minus what the machine has
# =============================================================================================

@dataclass
class Wheel:
    name: str  # canonical
    version: str
    path: Path  # in the download cache (trimmed copy where TRIMMED applies)
    reason: str  # why it travels
    source_sha256: str = ""  # the downloaded file's, before any trimming

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass
class WheelSet:
    target: Target
    carried: list[Wheel]
    machine_held: dict[str, str]  # canonical name -> version the run expects there (listed, else the lock's)
    left_out: dict[str, str]  # canonical name -> why (NOT_CARRIED and what only they need)
    model_path: set[str]  # canonical names of carried wheels the model-path phases need
    pins: dict[str, str] = field(default_factory=dict)  # every package of the run -> version
    cache: Path | None = None

    def total(self) -> int:
        return sum(w.size for w in self.carried)


def lock_pins(target: Target, lock: Path = LOCK) -> dict[str, str]:
    """Every package the lock pins for ``target`` (markers evaluated for it): canonical name -> version."""
    from packaging.requirements import Requirement

    pins: dict[str, str] = {}
    text = lock.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        spec = line.split(" --hash")[0].split("#")[0].strip()
        if not spec:
            continue
        req = Requirement(spec)
        if req.marker is None or req.marker.evaluate(target.marker_env()):
            pins[canon(req.name)] = next(iter(req.specifier)).version
    return pins


def lock_requirements(lock: Path = LOCK) -> dict[str, set[str]]:
    """What each locked package requires, read back from the lock's ``# via`` notes: for the packages whose
    wheels the derivation does not download (torch's build: it is the machine's)."""
    requires: dict[str, set[str]] = {}
    current = None
    in_via = False
    for line in lock.read_text().splitlines():
        if line and not line[0].isspace() and not line.startswith("#"):
            current, in_via = canon(re.split(r"[=;\s]", line, maxsplit=1)[0]), False
            continue
        text = line.strip()
        if current is None or not text.startswith("#"):
            continue
        note = text.lstrip("#").strip()
        if note.startswith("via"):
            in_via = True
            note = note[3:].strip()
        if in_via and note and not note.startswith("-r") and "(" not in note:
            requires.setdefault(canon(note), set()).add(current)
    return requires


def project_requirements(pyproject: Path = PYPROJECT) -> tuple[list[str], list[str]]:
    """The pyproject's dependencies and its `test` extra, as requirement strings."""
    import tomllib

    project = tomllib.loads(pyproject.read_text())["project"]
    return project["dependencies"], project["optional-dependencies"]["test"]


def _pip(args: list[str], what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        noise = "is ignored: it is neither a file nor a directory"
        err = "\n".join(line for line in proc.stderr.splitlines() if noise not in line)
        raise SystemExit(f"pip failed ({what}):\n{err[-4000:]}")


def _wheel_files(cache: Path) -> dict[tuple[str, str], Path]:
    out: dict[tuple[str, str], Path] = {}
    for path in cache.glob("*.whl"):
        name, version = path.name.split("-")[:2]
        out[(canon(name), version)] = path
    return out


def download(pins: dict[str, str], target: Target, cache: Path) -> dict[str, Path]:
    """Each ``name==version`` as a wheel for ``target`` in ``cache`` (only the missing ones are fetched)."""
    cache.mkdir(parents=True, exist_ok=True)
    have = _wheel_files(cache)
    missing = {n: v for n, v in pins.items() if (n, v) not in have}
    if missing:
        reqs = cache / ".download-requirements.txt"
        reqs.write_text("".join(f"{n}=={v}\n" for n, v in sorted(missing.items())))
        log(f"   downloading {len(missing)} wheels for {target.label} into {cache}")
        _pip(["download", "--quiet", "--no-deps", *target.pip_args(), "-d", str(cache), "-r", str(reqs)],
             f"download for {target.label}")
        have = _wheel_files(cache)
    out = {}
    for n, v in pins.items():
        if (n, v) not in have:
            raise SystemExit(f"no wheel of {n}=={v} for {target.label} in {cache}")
        out[n] = have[(n, v)]
    return out


def resolve_tools(target: Target, pins: dict[str, str], cache: Path, machine_roots: dict[str, str]) -> dict[str, str]:
    """The run's tools (RUN_TOOLS at the pyproject's test pins) and the machine's packages at their listed
    versions (``machine_roots``), with their dependencies, resolved by pip for ``target`` against the
    lock's versions of everything else; cached per (target, lock, roots)."""
    _, test_extra = project_requirements()
    from packaging.requirements import Requirement

    roots = [r for r in test_extra if canon(Requirement(r).name) in RUN_TOOLS]
    roots += [f"{n}=={v}" for n, v in sorted(machine_roots.items())]
    constraints = {n: v for n, v in pins.items() if n not in machine_roots}
    key = hashlib.sha256(json.dumps([target.as_dict(), sorted(constraints.items()), roots]).encode()).hexdigest()[:16]
    cached = cache / f".resolved-{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    cfile = cache / ".lock-constraints.txt"
    cfile.write_text("".join(f"{n}=={v}\n" for n, v in sorted(constraints.items())))
    report = cache / ".resolved-report.json"
    log(f"   resolving {', '.join(roots)} for {target.label}")
    with tempfile.TemporaryDirectory() as scratch:
        _pip(["install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report), "--target", scratch,
              *target.pip_args(), "-c", str(cfile), *roots], f"resolving the run's tools for {target.label}")
    resolved = {canon(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    cached.write_text(json.dumps(resolved, indent=1, sort_keys=True))
    return resolved


def available(name: str, version: str, target: Target, cache: Path) -> bool:
    """Whether ``name==version`` has a wheel for ``target`` (downloaded into ``cache`` if so); remembered."""
    if (canon(name), version) in _wheel_files(cache):
        return True
    missing = cache / f".no-wheel-{canon(name)}-{version}"
    if missing.is_file():
        return False
    try:
        download({name: version}, target, cache)
        return True
    except SystemExit:
        missing.write_text("")
        return False


def wheel_requirements(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA") and n.count("/") == 1)
        text = z.read(meta).decode("utf-8", "replace")
    head = text.split("\n\n", 1)[0]
    return [line.split(":", 1)[1].strip() for line in head.splitlines() if line.startswith("Requires-Dist:")]


def trim_wheel(source: Path, prefixes: tuple[str, ...], dest_dir: Path) -> Path:
    """A copy of ``source`` without the files under ``prefixes`` (RECORD rewritten to match); cached."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / source.name
    stamp = dest.with_suffix(".source-sha256")
    source_sha = sha256_of(source)
    if dest.is_file() and stamp.is_file() and stamp.read_text() == source_sha:
        return dest
    log(f"   trimming {source.name}: without {', '.join(prefixes)}")
    tmp = dest.with_suffix(".partial")
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zout:
        for info in zin.infolist():
            if info.filename.startswith(prefixes):
                continue
            data = zin.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if not line.startswith(prefixes)).encode()
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    tmp.replace(dest)
    stamp.write_text(source_sha)
    return dest


def derive(target: Target, machine: MachinePackages, cache: Path) -> WheelSet:
    """The wheels the run needs on ``target``'s machine that ``machine`` lacks (see the module doc)."""
    from packaging.requirements import Requirement

    # 1. Every package of the run: the lock's pins for the target, except the machine's packages at their
    #    listed versions (the run uses those), and the tools, all resolved together against the lock.
    pins = lock_pins(target)
    deps, test_extra = project_requirements()
    exact = {canon(Requirement(r).name) for r in deps if any(s.operator == "==" for s in Requirement(r).specifier)}
    env = target.marker_env()
    machine_versions = {n: v for n, v in machine.versions.items()
                        if v and n in pins and v != pins[n] and n not in exact and not MACHINE_BUILD.match(n)}
    forced_lock: set[str] = set()  # machine packages whose listed version the run cannot take
    while True:
        machine_roots = {}
        for n, v in machine_versions.items():
            if n in forced_lock:
                continue
            if available(n, v, target, cache):
                machine_roots[n] = v
            else:  # the rehearsal's Python: numpy 2.5 has no wheel for 3.11
                log(f"   {n}: the machine's {v} has no wheel for {target.label}; the lock's {pins[n]} stands in")
        resolved = resolve_tools(target, pins, cache, machine_roots)
        all_pins = {**pins, **resolved}
        files = download({n: v for n, v in all_pins.items() if not MACHINE_BUILD.match(n)}, target, cache)
        ws = _carry(target, machine, cache, all_pins, files, exact, env, test_extra, deps, machine_roots)
        if isinstance(ws, WheelSet):
            return ws
        forced_lock.add(ws)


def _carry(target: Target, machine: MachinePackages, cache: Path, all_pins: dict[str, str], files: dict[str, Path],
           exact: set[str], env: dict[str, str], test_extra: list[str], deps: list[str],
           machine_roots: dict[str, str]) -> WheelSet | str:
    """The closure of the run's roots and what of it travels; or the name of a machine package at its listed
    version that a carried package's requirement excludes (then the lock's version is resolved instead)."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    from_lock = lock_requirements()

    def requirements_of(name: str) -> list[Any]:
        """A package's requirements: from its wheel's METADATA, or for torch's build (not downloaded) the lock's."""
        if name not in files:
            return [Requirement(r) for r in sorted(from_lock.get(name, ()))]
        return [Requirement(r) for r in wheel_requirements(files[name])]

    # 2. The closure of the roots through the packages' own requirements (extras followed where asked).
    def closure(roots: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = [(Requirement(r), ()) for r in roots]
        while todo:
            req, _ = todo.pop()
            name = canon(req.name)
            extras = set(req.extras)
            key = name + "[" + ",".join(sorted(extras)) + "]"
            if key in seen:
                continue
            seen.add(key)
            for sub in requirements_of(name):
                markers_ok = sub.marker is None or any(
                    sub.marker.evaluate({**env, "extra": e}) for e in (extras or {""}))
                if markers_ok and canon(sub.name) in all_pins:
                    todo.append((sub, ()))
        return {k.split("[")[0] for k in seen}

    tool_roots = [r for r in test_extra if canon(Requirement(r).name) in RUN_TOOLS]
    run_roots = [r for r in deps if canon(Requirement(r).name) not in NOT_CARRIED] + tool_roots
    needed = closure(run_roots)
    left_out = {n: NOT_CARRIED.get(n, "needed only by " + ", ".join(NOT_CARRIED))
                for n in closure(list(NOT_CARRIED)) - needed}
    model = closure([r for r in deps if canon(Requirement(r).name) in MODEL_ROOTS])

    # 3. Carried: absent from the machine, or there at another version the run cannot take.
    reasons: dict[str, str] = {}
    for n in sorted(needed):
        listed = machine.versions.get(n, "absent")
        if MACHINE_BUILD.match(n):
            continue
        if listed == "absent":
            reasons[n] = "not on the machine"
        elif listed and n in exact and listed != all_pins[n]:
            reasons[n] = f"the project pins {all_pins[n]}; the machine has {listed}"
    while True:  # a carried package whose requirement excludes the machine's listed version
        added = False
        for n in list(reasons):
            for req in requirements_of(n):
                dep = canon(req.name)
                listed = machine.versions.get(dep)
                if (dep in needed and dep not in reasons and listed and not MACHINE_BUILD.match(dep)
                        and (req.marker is None or req.marker.evaluate(env))
                        and not req.specifier.contains(Version(listed), prereleases=True)):
                    if dep in machine_roots:
                        return dep  # resolve again with the lock's version of it
                    reasons[dep] = f"{n} needs {req.specifier}; the machine has {listed}"
                    added = True
        if not added:
            break
    carried = []
    for n, why in sorted(reasons.items()):
        path, source_sha = files[n], ""
        if n in TRIMMED:
            source_sha = sha256_of(path)
            path = trim_wheel(path, TRIMMED[n], cache / "trimmed")
            why += f"; without {', '.join(TRIMMED[n])} (as in the container image)"
        carried.append(Wheel(n, all_pins[n], path, why, source_sha))
    # What the run expects of the machine: its listed version (resolved above), else the lock's.
    held = {n: (machine.versions.get(n) or "the machine's build") if MACHINE_BUILD.match(n) else all_pins[n]
            for n in needed if n not in reasons}
    return WheelSet(target, carried, held, left_out, model & set(reasons), {n: all_pins[n] for n in needed}, cache)


# =============================================================================================
# 3. Parts under the carry limit, the manifest, the per-call scripts
# =============================================================================================

def tree_bytes(repo: Path = REPO_ROOT) -> int:
    """What the working tree weighs when it travels: tracked and untracked-not-ignored files."""
    proc = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                          capture_output=True, text=True, check=True)
    total = 0
    for name in proc.stdout.split("\0"):
        path = repo / name
        if name and path.is_file() and not path.is_symlink():
            total += path.stat().st_size
    return total


def git_commit(repo: Path = REPO_ROOT) -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head.stdout.strip() + ("+uncommitted changes" if dirty else "")


def layout_parts(wheels: WheelSet, budget: int) -> list[list[dict[str, Any]]]:
    """Assign wheels (or chunks of one) to parts of at most ``budget`` bytes; model-path wheels first, whole.

    Returns per part a list of pieces: {"wheel": Wheel, "offset": int, "length": int}.
    """
    model = [w for w in wheels.carried if w.name in wheels.model_path]
    rest = sorted((w for w in wheels.carried if w.name not in wheels.model_path), key=lambda w: -w.size)
    parts: list[list[dict[str, Any]]] = [[]]
    free = [budget]
    for w in sorted(model, key=lambda w: -w.size):
        if w.size > free[0]:
            raise SystemExit(f"the model-path wheels do not fit one part of {budget / MIB:.1f} MiB ({w.path.name})")
        parts[0].append({"wheel": w, "offset": 0, "length": w.size})
        free[0] -= w.size
    for w in rest:
        # Whole, in the first part with room; else cut: the first chunk fills the part with the most room.
        for i, room in enumerate(free):
            if w.size <= room:
                parts[i].append({"wheel": w, "offset": 0, "length": w.size})
                free[i] -= w.size
                break
        else:
            offset = 0
            while offset < w.size:
                i = max(range(len(free)), key=lambda k: free[k])
                if free[i] < MIB:
                    parts.append([])
                    free.append(budget)
                    i = len(free) - 1
                length = min(free[i], w.size - offset)
                parts[i].append({"wheel": w, "offset": offset, "length": length})
                free[i] -= length
                offset += length
    return parts


def write_parts(wheels: WheelSet, out: Path, budget: int, plan_note: str = "") -> dict[str, Any]:
    """Write .whl/pN/ (wheels, chunks, manifest.json, run.sh); returns the manifest."""
    parts = layout_parts(wheels, budget)
    for old in out.glob("p[0-9]*"):
        shutil.rmtree(old)
    wheels_doc: dict[str, Any] = {}
    parts_doc = []
    for index, pieces in enumerate(parts, start=1):
        pdir = out / f"p{index}"
        pdir.mkdir(parents=True)
        files = []
        for piece in pieces:
            w: Wheel = piece["wheel"]
            whole = piece["offset"] == 0 and piece["length"] == w.size
            name = w.path.name if whole else f"{w.path.name}.chunk-{piece['offset']:012d}"
            dest = pdir / name
            if whole:
                shutil.copyfile(w.path, dest)
            else:
                with w.path.open("rb") as src, dest.open("wb") as dst:
                    src.seek(piece["offset"])
                    dst.write(src.read(piece["length"]))
            files.append({"name": name, "bytes": dest.stat().st_size, "sha256": sha256_of(dest)})
            doc = wheels_doc.setdefault(w.path.name, {"name": w.name, "version": w.version, "bytes": w.size,
                                                      "sha256": sha256_of(w.path), "reason": w.reason,
                                                      "model_path": w.name in wheels.model_path, "pieces": []})
            if w.source_sha256:
                doc["downloaded_sha256"] = w.source_sha256
            doc["pieces"].append({"part": f"p{index}", "file": name, "offset": piece["offset"]})
        parts_doc.append({"name": f"p{index}", "files": files, "bytes": sum(f["bytes"] for f in files)})
    for doc in wheels_doc.values():
        doc["pieces"].sort(key=lambda p: p["offset"])
    calls = plan_calls(len(parts_doc))
    manifest: dict[str, Any] = {
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "target": wheels.target.as_dict(),
        "lock_sha256": sha256_of(LOCK),
        "machine_packages": machine_packages_file().name,
        "carry_budget_bytes": budget,
        "tree_bytes": tree_bytes(),
        "machine_held": dict(sorted(wheels.machine_held.items())),
        "left_out": wheels.left_out,
        "wheels": wheels_doc,
        "parts": parts_doc,
        "calls": calls,
    }
    manifest["id"] = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]
    for index, part in enumerate(parts_doc, start=1):
        pdir = out / part["name"]
        (pdir / MANIFEST).write_text(json.dumps(manifest, indent=1))
        script = pdir / "run.sh"
        script.write_text(RUN_SH.format(n=index, calls=len(parts_doc), part=part["name"], id=manifest["id"],
                                        created=manifest["created_utc"], commit=manifest["commit"]))
        script.chmod(0o755)
    return manifest


RUN_SH = """#!/usr/bin/env bash
# Call {n} of {calls} of the prepared GPU run (manifest {id}, prepared {created} at commit {commit}).
# On the GPU machine, from the repository root: carry [".whl/{part}"], command `bash .whl/{part}/run.sh`
# (docs/benchmarks.md, "The GPU run"). Writes its files to $OUT; exit 0 when every phase succeeded.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1 RAY_USAGE_STATS_ENABLED=0
exec python3 -m loadtest.gpu_run call "$here" "$@"
"""


def plan_calls(n_parts: int) -> list[dict[str, Any]]:
    """Call k carries part k and needs parts 1..k, except call 1, which needs part 1 only (the model
    path is whole there). A call installs every wheel whose pieces all lie in the parts it needs."""
    calls = []
    for k in range(1, n_parts + 1):
        needs = ["p1"] if k == 1 else [f"p{i}" for i in range(1, k + 1)]
        calls.append({"call": k, "carries": f"p{k}", "needs_parts": needs})
    return calls


# =============================================================================================
# 4. The plans: phases per call, their budgets and parameters (GPU, or the CPU rehearsal)
# =============================================================================================

@dataclass(frozen=True)
class Phase:
    name: str
    group: str  # the $OUT file pair (<group>.json, <group>.md) its results go to
    budget_s: int  # on the GPU machine
    imports: tuple[str, ...]  # checked before the call spends any time


MODEL_IMPORTS = ("torch", "diffusers", "transformers", "serve_app.model", "serve_app.settings", "loadtest.gpu_benchmark")
SERVICE_IMPORTS = ("ray", "ray.serve", "fastapi", "swagger_ui_bundle", "serve_app.app", "serve_app.model_replica",
                   "serve_app.ingress", "serve_app.launch", "loadtest.app_server", "loadtest.locust_run", "locust",
                   "matplotlib")
# The compiled model call and its host time (issue 22), plan f: the UNet and the decoders compiled
# per batch bucket against eager at the candidate batch sizes, each row with its profile line (text
# encoder / UNet / decode / other ms), and JPEG on the GPU against the CPU's. Their parameters are
# MODEL_CALL_PARAMETERS', their commands model_call_phase_command's.
MODEL_CALL_PHASES = (
    Phase("jpeg", "model_call", 60, MODEL_IMPORTS + ("loadtest.jpeg_benchmark", "PIL")),
    Phase("compiled_model", "model_call", 380, MODEL_IMPORTS),
)
PHASES = {
    "presets": Phase("presets", "direct", 90, ("serve_app.model.presets",)),
    "sweep": Phase("sweep", "direct", 100, MODEL_IMPORTS),
    "gputests": Phase("gputests", "gputests", 150, ("pytest", "numpy", "serve_app.model.decoders")),
    "service": Phase("service", "service", 170, SERVICE_IMPORTS),
    "compiled": Phase("compiled", "compiled", 200, MODEL_IMPORTS),
    "gputests_compiled": Phase("gputests_compiled", "compiled", 220, ("pytest", "numpy", "serve_app.model.decoders")),
    # Three starts (cold, warm, the compile artifacts loaded into an empty cache): plan c's 12 minutes
    # exactly. A start that overruns is stopped; the starts before it are in its JSON already.
    "compile_start": Phase("compile_start", "compiled", 470, MODEL_IMPORTS + ("loadtest.compile_start",)),
    # SDXL-Turbo: its full-size random-weight preset built once (a 2.57G-parameter UNet and two text
    # encoders, written with save_pretrained), its direct calls at 512x512, 1 step, and the
    # service serving it beside SD-Turbo under a 50/50 mix. Budgets: estimates scaled from SD-Turbo's
    # (about 3x its UNet), not yet measured on a GPU.
    "presets_xl": Phase("presets_xl", "sdxl", 180, ("serve_app.model.presets",)),
    "sweep_xl": Phase("sweep_xl", "sdxl", 150, MODEL_IMPORTS),
    "service_mix": Phase("service_mix", "service_mix", 200, SERVICE_IMPORTS),
    **{phase.name: phase for phase in MODEL_CALL_PHASES},
}
# The phases that build presets: each runs once per machine (a later call finds them built).
PRESET_PHASES = ("presets", "presets_xl")
# Each plan fits 12 minutes of machine time (the machine's start, about 2 minutes, and each call's
# transfer, stash, install and import check, about 40 s, included) and each call 10 minutes.
# Plan a, the main run: call 1 needs part 1 only (the model path); the last call runs the service.
# Plans b, c and f, what does not fit plan a: one call each, carrying part 1 only.
# Plans d and e, SDXL-Turbo (none fits beside plan a's 12 minutes): d one call, carrying part 1 only
# (2 + 0.7 + 5.5 minutes); e two calls like plan a, the mixed service needing Ray (2 + 1.3 + 7.8 minutes).
PLANS = {
    "a": {"first": ("presets", "sweep", "gputests"), "last": ("presets", "service")},
    "b": {"first": ("presets", "compiled", "gputests_compiled"), "last": ()},
    "c": {"first": ("presets", "compile_start"), "last": ()},
    "d": {"first": ("presets_xl", "sweep_xl"), "last": ()},
    "e": {"first": ("presets", "presets_xl"), "last": ("presets", "presets_xl", "service_mix")},
    # presets 90 + jpeg 60 + compiled_model 380 = 530 s of budgets, plus start and one call's ~40 s.
    "f": {"first": ("presets", "jpeg", "compiled_model"), "last": ()},
}


def phases_for(plan: str, call: int, n_calls: int) -> list[str]:
    if call == 1 and n_calls == 1:
        return list(dict.fromkeys(PLANS[plan]["first"] + PLANS[plan]["last"]))
    if call == 1:
        return list(PLANS[plan]["first"])
    return list(PLANS[plan]["last"]) if call == n_calls else []


@dataclass(frozen=True)
class Profile:
    """The phases' parameters: on the GPU, or the CPU rehearsal (same commands, small sizes)."""

    model: str
    device: str
    size: str
    config: str
    batch_sizes: str
    iters: int
    warmup_iters: int
    concurrency: str
    duration_s: float
    warmup_s: float
    compiled_batch_sizes: str
    compile_mode: str
    compile_buckets: str
    budget_scale: float  # the rehearsal's budgets are the GPU's times this (a slow shared CPU)
    # SDXL-Turbo's preset (sdxl-turbo-random on the GPU; the rehearsal's tiny-xl, as tiny stands in for
    # sd-turbo-random), its direct-call batch sizes, and the mixed service's client levels.
    model_xl: str = "sdxl-turbo-random"
    xl_batch_sizes: str = "1,8,16"
    mix_concurrency: str = "1,16,32"


GPU = Profile("sd-turbo-random", "cuda", "512x512", "fp16", "1,8,16,32", 10, 2, "1,8,16,32,64", 12.0, 3.0,
              "8,16", "reduce-overhead", "1,2,4,8", 1.0)
REHEARSAL = Profile("tiny", "cpu", "64x64", "fp32", "1,2", 2, 1, "1,2", 3.0, 0.5, "1", "default", "1", 2.0,
                    model_xl="tiny-xl", xl_batch_sizes="1,2", mix_concurrency="1,2")
REHEARSAL_CALL_LIMIT_S = 3600  # a shared 2-core CPU: the budgets are checked, the call's clock is not the GPU's


# Per device: the batch sizes (= compile buckets) the compiled model call is swept at, the compile mode,
# timed calls per batch, and the JPEG benchmark's batch sizes. On the GPU: the candidate max_batch_size
# values (16 or 32) under CUDA graphs; in the rehearsal: one bucket, inductor's default mode.
MODEL_CALL_PARAMETERS = {
    "cuda": {"batch_sizes": "16,32", "compile_mode": "reduce-overhead", "iters": 10, "jpeg_batch_sizes": "1,16,32"},
    "cpu": {"batch_sizes": "2", "compile_mode": "default", "iters": 2, "jpeg_batch_sizes": "1,2"},
}


def model_call_phase_command(name: str, prof: Profile, work: Path, py: str) -> list[str]:
    """The commands of MODEL_CALL_PHASES."""
    params = MODEL_CALL_PARAMETERS[prof.device]
    out = str(work / "phases" / name)
    common = ["--model", prof.model, "--device", prof.device, "--cache-dir", str(work / "presets"), "--size", prof.size]
    if name == "jpeg":
        return [py, "-m", "loadtest.jpeg_benchmark", *common, "--batch-sizes", params["jpeg_batch_sizes"],
                "--iters", str(params["iters"]), "--out", out]
    if name == "compiled_model":
        # Eager rows (fp16 full, fp16 tiny) first, then the same pipeline with the UNet and both
        # decoders compiled for exactly these buckets (fp16-compile full-compiled, ... tiny-compiled).
        return [py, "-m", "loadtest.gpu_benchmark", *common, "--configs", f"{prof.config},{prof.config}-compile",
                "--decoders", "full,tiny", "--decoder-compile-mode", params["compile_mode"],
                "--batch-sizes", params["batch_sizes"], "--compile-buckets", params["batch_sizes"],
                "--iters", str(params["iters"]), "--warmup-iters", str(prof.warmup_iters), "--skip-service",
                "--out", out]
    raise ValueError(name)


def phase_command(name: str, prof: Profile, work: Path, py: str | None = None) -> list[str]:
    py = py or sys.executable
    if name in {phase.name for phase in MODEL_CALL_PHASES}:
        return model_call_phase_command(name, prof, work, py)
    presets = str(work / "presets")
    out = str(work / "phases" / name)
    common = ["--model", prof.model, "--device", prof.device, "--cache-dir", presets, "--size", prof.size]
    if name == "presets":
        # Built once per machine, before anything is timed (the sweep loads them from disk).
        return presets_command(py, (prof.model, "taesd-random"), presets, out + ".json")
    if name == "sweep":
        return [py, "-m", "loadtest.gpu_benchmark", *common, "--configs", prof.config, "--decoders", "full,tiny",
                "--batch-sizes", prof.batch_sizes, "--iters", str(prof.iters), "--warmup-iters", str(prof.warmup_iters),
                "--skip-service", "--out", out]
    if name == "compiled":
        return [py, "-m", "loadtest.gpu_benchmark", *common, "--configs", prof.config,
                "--decoders", "full-compiled,tiny-compiled", "--decoder-compile-mode", prof.compile_mode,
                "--batch-sizes", prof.compiled_batch_sizes, "--iters", str(prof.iters),
                "--warmup-iters", str(prof.warmup_iters), "--skip-service", "--out", out]
    if name == "compile_start":
        return [py, "-m", "loadtest.compile_start", *common, "--buckets", prof.compile_buckets,
                "--mode", prof.compile_mode, "--decoders", "full,tiny", "--out", out]
    if name == "service":
        return [py, "-m", "loadtest.gpu_benchmark", *common, "--skip-sweep",
                "--ceiling-from", str(work / "phases" / "sweep" / "gpu_benchmark.json"),
                "--concurrency", prof.concurrency, "--duration-s", str(prof.duration_s),
                "--warmup-s", str(prof.warmup_s), "--out", out]
    if name in ("presets_xl", "sweep_xl", "service_mix"):
        return sdxl_phase_command(name, prof, work, py)
    if name in ("gputests", "gputests_compiled"):
        # The compiled decoders' tests compile 16 graphs: plan b runs them, plan a the eager ones.
        select = "compile" if name == "gputests_compiled" else "not compile"
        return [py, "-m", "pytest", "tests/gpu", "-k", select, "-s", "-q", "-p", "no:cacheprovider",
                "-o", "addopts=", "--junitxml", out + ".xml"]
    raise ValueError(name)


def presets_command(py: str, names: tuple[str, ...], presets: str, out_json: str) -> list[str]:
    """Build the presets ``names`` into ``presets``, each timed; the build seconds into ``out_json``."""
    return [py, "-c", "import json,sys,time\nfrom serve_app.model import ensure_preset\nout={}\n"
            f"for n in {names!r}:\n t=time.perf_counter(); ensure_preset(n, {presets!r});"
            " out[n]=round(time.perf_counter()-t,1); print(n, out[n], 's', flush=True)\n"
            f"open({out_json!r},'w').write(json.dumps({{'build_s': out}}))"]


def sdxl_phase_command(name: str, prof: Profile, work: Path, py: str) -> list[str]:
    """SDXL-Turbo's phases (plans d and e): its presets, its direct calls at the profile's size and
    1 step (full VAE and TAESDXL), and the service of both models under a 50/50 mix."""
    presets = str(work / "presets")
    out = str(work / "phases" / name)
    common = ["--device", prof.device, "--cache-dir", presets, "--size", prof.size]
    if name == "presets_xl":
        return presets_command(py, (prof.model_xl, "taesdxl-random"), presets, out + ".json")
    if name == "sweep_xl":
        return [py, "-m", "loadtest.gpu_benchmark", "--model", prof.model_xl, *common, "--configs", prof.config,
                "--decoders", "full,tiny", "--tiny-decoder", "taesdxl-random", "--batch-sizes", prof.xl_batch_sizes,
                "--iters", str(prof.iters), "--warmup-iters", str(prof.warmup_iters), "--skip-service", "--out", out]
    if name == "service_mix":
        return [py, "-m", "loadtest.gpu_benchmark", "--model", prof.model, *common, "--skip-sweep",
                "--models", f"{prof.model},{prof.model_xl}", "--mix", "1:1", "--concurrency", prof.mix_concurrency,
                "--duration-s", str(prof.duration_s), "--warmup-s", str(prof.warmup_s), "--out", out]
    raise ValueError(name)


# =============================================================================================
# 5. One call on the machine: stash, verify, install, import, then the phases
# =============================================================================================

class CallFailed(Exception):
    def __init__(self, status: str, detail: str, exit_code: int):
        super().__init__(detail)
        self.status, self.detail, self.exit_code = status, detail, exit_code


class Call:
    def __init__(self, part_dir: Path, out: Path, work: Path, plan: str, rehearsal: bool, time_limit_s: float):
        self.started = time.monotonic()
        self.deadline = self.started + time_limit_s
        self.part_dir, self.out, self.work, self.plan, self.rehearsal = part_dir, out, work, plan, rehearsal
        self.manifest = json.loads((part_dir / MANIFEST).read_text())
        self.part = part_dir.name
        self.spec = next(c for c in self.manifest["calls"] if c["carries"] == self.part)
        self.n = self.spec["call"]
        n_calls = len(self.manifest["calls"])
        self.tag = f"{plan}{self.n}"  # file names: run-a1.json, ...
        self.phases = phases_for(plan, self.n, n_calls)
        self.profile = REHEARSAL if rehearsal else GPU
        self.stash = work / "stash"
        self.site = work / "site"
        self.record: dict[str, Any] = {
            "call": self.n, "of_calls": n_calls, "plan": plan, "rehearsal": rehearsal, "manifest": self.manifest["id"],
            "commit": self.manifest["commit"], "started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "time_limit_s": time_limit_s, "phases_planned": self.phases, "phases": {}, "status": "running"}
        out.mkdir(parents=True, exist_ok=True)
        self.log_file = (out / f"run-{self.tag}.log").open("a")

    # -- bookkeeping ----------------------------------------------------------------------
    def say(self, msg: str) -> None:
        line = f"[{time.monotonic() - self.started:6.1f}s] {msg}"
        print(line, flush=True)
        self.log_file.write(line + "\n")
        self.log_file.flush()

    def left_s(self) -> float:
        return self.deadline - time.monotonic()

    def save_record(self) -> None:
        self.record["elapsed_s"] = round(time.monotonic() - self.started, 1)
        _write_atomic(self.out / f"run-{self.tag}.json", json.dumps(self.record, indent=1))

    # -- 1. this call's part into the stash, and every part it needs there -------------------------
    def stash_part(self) -> None:
        self.stash.mkdir(parents=True, exist_ok=True)
        part = next(p for p in self.manifest["parts"] if p["name"] == self.part)
        for f in part["files"]:
            src = self.part_dir / f["name"]
            if not src.is_file() or sha256_of(src) != f["sha256"]:
                raise CallFailed("part damaged", f"{self.part}/{f['name']} is missing or does not match its sha256: "
                                 "prepare again and carry the whole folder", 3)
            dest = self.stash / f["name"]
            if not (dest.is_file() and dest.stat().st_size == f["bytes"]):
                shutil.copyfile(src, dest)
        (self.stash / f"{self.part}.{self.manifest['id']}.ok").write_text("")
        self.say(f"part {self.part}: {len(part['files'])} files, {part['bytes'] / MIB:.1f} MiB, sha256 verified, stashed")

    def check_parts(self) -> None:
        missing = []
        for name in self.spec["needs_parts"]:
            part = next(p for p in self.manifest["parts"] if p["name"] == name)
            stamp = self.stash / f"{name}.{self.manifest['id']}.ok"
            bad = [f["name"] for f in part["files"] if not (self.stash / f["name"]).is_file()
                   or (self.stash / f["name"]).stat().st_size != f["bytes"]]
            if not stamp.is_file() or bad:
                missing.append(name)
        if missing:
            calls = ", ".join(f"call {c['call']} (carries {c['carries']})" for c in self.manifest["calls"]
                              if c["carries"] in missing)
            raise CallFailed("parts missing",
                             f"part(s) {', '.join(missing)} of manifest {self.manifest['id']} are not on this machine "
                             f"(not run yet, or the machine was given back since): run {calls} again with "
                             f"--install-only, then this call", 3)
        self.say(f"parts needed by call {self.n}: {', '.join(self.spec['needs_parts'])}: all present")

    # -- 2. join the split wheels, install --------------------------------------------------------
    def install(self) -> None:
        wheels_dir = self.work / "wheels"
        wheels_dir.mkdir(parents=True, exist_ok=True)
        todo = []
        needs = set(self.spec["needs_parts"])
        for fname, doc in self.manifest["wheels"].items():
            if not all(piece["part"] in needs for piece in doc["pieces"]):
                continue  # a piece travels in a later call
            marker = self.site / f".installed-{doc['sha256'][:16]}"
            if marker.is_file():
                continue
            dest = wheels_dir / fname
            if len(doc["pieces"]) == 1 and doc["pieces"][0]["file"] == fname:
                shutil.copyfile(self.stash / fname, dest)
            else:
                with dest.open("wb") as joined:
                    for piece in doc["pieces"]:
                        with (self.stash / piece["file"]).open("rb") as chunk:
                            shutil.copyfileobj(chunk, joined)
            if sha256_of(dest) != doc["sha256"]:
                raise CallFailed("wheel damaged", f"{fname} does not match its sha256 once joined", 3)
            todo.append((dest, marker))
        if todo:
            self.say(f"installing {len(todo)} wheels into {self.site}")
            proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-index", "--no-deps",
                                   "--no-compile", "--no-cache-dir", "--upgrade", "--disable-pip-version-check",
                                   "--target", str(self.site), *(str(d) for d, _ in todo)],
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise CallFailed("install failed", proc.stderr[-3000:], 4)
            for dest, marker in todo:
                marker.write_text(dest.name)
                dest.unlink()
        installed = len(list(self.site.glob(".installed-*"))) if self.site.is_dir() else 0
        self.say(f"installed: {installed} of {len(self.manifest['wheels'])} carried wheels")

    # -- 3. every module the phases import ------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(self.site), str(REPO_ROOT)])
        env["SDTURBO_TEST_CACHE_DIR"] = str(self.work / "presets")
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        env["TORCHINDUCTOR_CACHE_DIR"] = str(self.work / "inductor")
        return env

    def check_imports(self) -> None:
        """Import every module this call's phases import, before any phase spends time. Locust
        monkeypatches the process it is imported into (gevent), so its modules get a process of their own,
        as they do in the run (the load tool is always a subprocess)."""
        modules = list(dict.fromkeys(m for p in self.phases for m in PHASES[p].imports))
        gevent_world = [m for m in modules if m.split(".")[0] == "locust" or m == "loadtest.locust_run"]
        failures = []
        for group in ([m for m in modules if m not in gevent_world], gevent_world):
            if not group:
                continue
            code = ("import importlib,sys\nbad=[]\n"
                    f"for m in {group!r}:\n"
                    "    try: importlib.import_module(m)\n"
                    "    except Exception as e: bad.append(f'{m}: {type(e).__name__}: {e}')\n"
                    "print('\\n'.join(bad)); sys.exit(1 if bad else 0)")
            proc = subprocess.run([sys.executable, "-c", code], env=self.env(), cwd=REPO_ROOT, capture_output=True,
                                  text=True, timeout=300)
            if proc.returncode != 0:
                failures.append(proc.stdout.strip() or proc.stderr[-3000:])
        if failures:
            raise CallFailed("imports fail", "\n".join(failures)[-3000:], 5)
        if modules:
            self.say(f"imports resolve: {', '.join(modules)}")

    def environment(self) -> None:
        info: dict[str, Any] = {"python": sys.version.split()[0], "executable": sys.executable}
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30)
            rows = [r.strip() for r in smi.stdout.splitlines() if r.strip()]
            if rows:
                name, driver, mem = (x.strip() for x in rows[0].split(","))
                info.update(gpu=name, driver=driver, gpu_memory=mem, gpus=len(rows))
        except (OSError, subprocess.SubprocessError):
            info["gpu"] = "none (no nvidia-smi)"
        probe = subprocess.run([sys.executable, "-c", "import json,torch;print(json.dumps({'torch':torch.__version__,"
                                "'cuda':torch.version.cuda,'cuda_available':torch.cuda.is_available()}))"],
                               env=self.env(), capture_output=True, text=True, timeout=120)
        if probe.returncode == 0:
            info.update(json.loads(probe.stdout.strip().splitlines()[-1]))
        self.record["environment"] = info
        self.say(f"environment: {info}")

    # -- 4. the phases ---------------------------------------------------------------------------------
    def run_phases(self) -> bool:
        all_ok = True
        for name in self.phases:
            phase = PHASES[name]
            budget = phase.budget_s * self.profile.budget_scale
            entry: dict[str, Any] = {"budget_s": budget}
            self.record["phases"][name] = entry
            if name in PRESET_PHASES and self._presets_built(name):
                entry.update(status="ok", detail="already built on this machine", elapsed_s=0.0)
                self.save_record()
                continue
            if self.left_s() < budget + CALL_RESERVE_S:
                entry.update(status="skipped", detail=f"{self.left_s():.0f} s left in this call, budget {budget:.0f} s")
                self.say(f"phase {name}: skipped ({entry['detail']})")
                all_ok = False
                self.save_record()
                continue
            self.say(f"phase {name}: starting (budget {budget:.0f} s, {self.left_s():.0f} s left)")
            started = time.monotonic()
            status, rc = self._run(phase_command(name, self.profile, self.work), budget)
            entry.update(status=status, exit_code=rc, elapsed_s=round(time.monotonic() - started, 1))
            all_ok &= status == "ok"
            self.say(f"phase {name}: {status} (exit {rc}) after {entry['elapsed_s']} s")
            self.collect(name, entry)
            self.save_record()
        return all_ok

    def _presets_built(self, name: str = "presets") -> bool:
        return (self.work / "phases" / f"{name}.json").is_file()

    def _run(self, cmd: list[str], budget: float) -> tuple[str, int | None]:
        """Run one phase in its own process group, its output into the call's log; stopped at its budget."""
        import threading

        (self.work / "phases").mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace", start_new_session=True)

        def relay() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                self.say("   " + line.rstrip("\n"))

        reader = threading.Thread(target=relay, daemon=True)
        reader.start()
        timed_out = False
        try:
            proc.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            timed_out = True
            self.say(f"   budget of {budget:.0f} s spent: stopping the phase")
            _kill_group(proc)
        reader.join(timeout=10)
        rc = proc.returncode
        return ("timed out" if timed_out else "ok" if rc == 0 else "failed"), rc

    def collect(self, name: str, entry: dict[str, Any]) -> None:
        """The phase's own JSON/Markdown (whatever it wrote, also after a timeout) into its group's files."""
        phase = PHASES[name]
        base = self.work / "phases" / name
        result: Any = None
        md = ""
        if name in PRESET_PHASES and (self.work / "phases" / f"{name}.json").is_file():
            result = json.loads((self.work / "phases" / f"{name}.json").read_text())
            md = "Presets built (s): " + ", ".join(f"{k} {v}" for k, v in result["build_s"].items())
        elif name in ("gputests", "gputests_compiled"):
            result, md = junit_summary(Path(str(base) + ".xml"), self.log_file.name)
        else:
            for stem in ("gpu_benchmark", "compile_start", "jpeg_benchmark"):
                if (base / f"{stem}.json").is_file():
                    result = json.loads((base / f"{stem}.json").read_text())
                    md = (base / f"{stem}.md").read_text() if (base / f"{stem}.md").is_file() else ""
            for extra in ("app/raw.csv", "app-server.log"):
                if (base / extra).is_file() and name == "service":
                    shutil.copyfile(base / extra, self.out / f"service-{extra.replace('/', '-')}")
        entry["has_result"] = result is not None
        gjson = self.out / f"{phase.group}.json"
        doc = json.loads(gjson.read_text()) if gjson.is_file() else {}
        doc[name] = {"status": entry["status"], "elapsed_s": entry.get("elapsed_s"), "budget_s": entry["budget_s"],
                     "environment": self.record.get("environment"), "commit": self.record["commit"], "result": result}
        _write_atomic(gjson, json.dumps(doc, indent=1))
        with (self.out / f"{phase.group}.md").open("a") as f:
            f.write(f"\n# Phase {name}: {entry['status']} ({entry.get('elapsed_s')} s of {entry['budget_s']:.0f})\n\n"
                    f"{md or '(no report written)'}\n")

    # -- the call ------------------------------------------------------------------------------------------
    def run(self, install_only: bool) -> int:
        self.say(f"call {self.n} of plan {self.plan}: part {self.part}, manifest {self.manifest['id']}, "
                 f"phases {self.phases if not install_only else '(install only)'}")
        try:
            self.stash_part()
            self.check_parts()
            self.install()
            if install_only:
                self.record["status"] = "installed"
                return 0
            self.check_imports()
            self.environment()
            self.save_record()
            ok = self.run_phases()
            self.record["status"] = "ok" if ok else "some phases did not succeed"
            return 0 if ok else 1
        except CallFailed as exc:
            self.record.update(status=exc.status, detail=exc.detail)
            self.say(f"STOPPED: {exc.status}: {exc.detail}")
            return exc.exit_code
        finally:
            self.save_record()
            self.say(f"call {self.n}: {self.record['status']}")


def _kill_group(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def junit_summary(xml: Path, log_path: str) -> tuple[dict[str, Any] | None, str]:
    """tests/gpu's outcome from pytest's JUnit XML, and the figures the tests printed ([gpu] lines)."""
    import xml.etree.ElementTree as ET

    figures = [line.split("   ", 1)[-1].strip() for line in Path(log_path).read_text().splitlines() if "[gpu]" in line]
    if not xml.is_file():
        return None, "\n".join(figures)
    cases = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = child.tag + (f": {child.get('message', '')[:300]}" if child.get("message") else "")
        cases.append({"test": f"{case.get('classname')}::{case.get('name')}", "time_s": float(case.get("time") or 0),
                      "outcome": outcome})
    md = ["| test | outcome | s |", "|---|---|---:|"]
    md += [f"| {c['test']} | {c['outcome']} | {c['time_s']:.1f} |" for c in cases]
    if figures:
        md += ["", "Figures the tests printed:", "", *(f"- {f}" for f in figures)]
    return {"tests": cases, "figures": figures}, "\n".join(md)


# =============================================================================================
# 6. prepare, rehearse, collect
# =============================================================================================

def prepare(out: Path = PARTS_DIR, target: Target | None = None, cache: Path | None = None) -> dict[str, Any]:
    machine = read_machine_packages()
    target = target or gpu_target(machine)
    cache = cache or out / "cache" / target.label
    log(f"== deriving the wheel set for {target.label} from {LOCK.relative_to(REPO_ROOT)} minus {machine.path.name}")
    wheels = derive(target, machine, cache)
    tree = tree_bytes()
    budget = CARRY_LIMIT - tree - CARRY_MARGIN
    manifest = write_parts(wheels, out, budget)
    log(describe(manifest))
    return manifest


def describe(manifest: dict[str, Any]) -> str:
    total = sum(w["bytes"] for w in manifest["wheels"].values())
    lines = [f"manifest {manifest['id']} ({manifest['created_utc']}, commit {manifest['commit']}): "
             f"{len(manifest['wheels'])} wheels, {total / MIB:.1f} MiB; working tree {manifest['tree_bytes'] / MIB:.1f} "
             f"MiB; per part at most {manifest['carry_budget_bytes'] / MIB:.1f} MiB"]
    for part in manifest["parts"]:
        split = [f["name"] for f in part["files"] if ".chunk-" in f["name"]]
        lines.append(f"  {part['name']}: {part['bytes'] / MIB:.1f} MiB in {len(part['files'])} files"
                     + (f" (chunks: {', '.join(split)})" if split else ""))
    n_calls = len(manifest["calls"])
    for plan in PLANS:
        for call in manifest["calls"]:
            phases = phases_for(plan, call["call"], n_calls)
            if not phases and plan != "a":
                continue
            counted = [p for p in phases if p not in PRESET_PHASES or call["call"] == 1]  # built once per machine
            lines.append(f"  plan {plan}, call {call['call']}: carry [\".whl/{call['carries']}\"], command "
                         f"`bash .whl/{call['carries']}/run.sh{'' if plan == 'a' else ' --plan ' + plan}`; "
                         f"phases {', '.join(phases) or '(install only)'}: "
                         f"{sum(PHASES[p].budget_s for p in counted)} s of budgets")
    return "\n".join(lines)


def show() -> None:
    """The plans and the exact command of each phase on the GPU machine (the rehearsal: same, with REHEARSAL)."""
    manifest = PARTS_DIR / "p1" / MANIFEST
    if manifest.is_file():
        log(describe(json.loads(manifest.read_text())))
    else:
        log("no .whl/p1/manifest.json: run `python -m loadtest.gpu_run prepare` first")
    for plan, calls in PLANS.items():
        for which, phases in calls.items():
            log(f"plan {plan}, {'call 1' if which == 'first' else 'last call'}: {', '.join(phases) or '-'}")
    work = Path(MACHINE_WORK)
    for name, phase in PHASES.items():
        cmd = phase_command(name, GPU, work, "python3")
        log(f"\n{name} (budget {phase.budget_s} s, results in $OUT/{phase.group}.json and .md; environment: "
            f"PYTHONPATH={work}/site:<repo>):\n  " + " ".join(c if " " not in c and "\n" not in c else repr(c) for c in cmd))


def standin_interpreter(wheels: WheelSet, cache: Path) -> Path:
    """A virtual environment holding what the GPU machine holds, as far as the run goes: the CPU build
    of torch for its CUDA build, and every package the derivation left to the machine, at the machine's
    listed version where the list gives one. Built once per content under ``cache`` (the run never
    installs into it: its wheels go to a --target directory)."""
    base = getattr(sys, "_base_executable", sys.executable)
    torch_version = lock_pins(wheels.target)["torch"]
    held = {n: v for n, v in wheels.machine_held.items() if not MACHINE_BUILD.match(n)}
    key = hashlib.sha256(json.dumps([base, torch_version, sorted(held.items())]).encode()).hexdigest()[:16]
    venv = cache / f"standin-{key}"
    py = venv / "bin" / "python"
    if (venv / ".complete").is_file():
        return py
    shutil.rmtree(venv, ignore_errors=True)
    log(f"   stand-in interpreter: a new venv with torch=={torch_version} (CPU) and {len(held)} of the machine's packages")
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    # 1. torch (pip takes the CPU build of the pinned version from this machine's own files).
    _run_checked([str(py), "-m", "pip", "install", "--quiet", "--no-deps", f"torch=={torch_version}"], "torch")
    # 2. The machine's packages the run uses, at the versions the derivation expects there.
    files = download(held, wheels.target, wheels.cache or cache)
    _run_checked([str(py), "-m", "pip", "install", "--quiet", "--no-index", "--no-deps", *map(str, files.values())],
                 "the machine's packages")
    (venv / ".complete").write_text(json.dumps(held, indent=1))
    return py


def _run_checked(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{what}: {proc.stderr[-3000:]}")


def rehearsal_env(venv_python: Path, out: Path) -> dict[str, str]:
    """Only the stand-in interpreter on the path: no project venv, no PYTHONPATH, no user site."""
    keep = ("HOME", "LANG", "LC_ALL", "TMPDIR", "PIP_FIND_LINKS", "PIP_CERT", "PIP_DEFAULT_TIMEOUT")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    env.update(PATH=f"{venv_python.parent}:/usr/local/bin:/usr/bin:/bin", OUT=str(out), HF_HUB_OFFLINE="1",
               PYTHONNOUSERSITE="1", PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1")
    return env


def rehearse(cache: Path, work: Path, drop: tuple[str, ...] = (), stop_after_imports: bool = False,
             plan: str = "a") -> dict[str, Any]:
    """Build the parts for this interpreter from the lock, install them over the stand-in interpreter and
    run every call of ``plan`` with --rehearsal. ``drop`` leaves wheels out (to check the check).
    Returns {"calls": [(exit code, run record)], "out": [dirs], "seconds": {...}}."""
    t0 = time.monotonic()
    machine = read_machine_packages()
    target = host_target()
    log(f"== rehearsal: wheel set for {target.label} (this interpreter), derived as for the GPU machine")
    wheels = derive(target, machine, cache / target.label)
    wheels.carried = [w for w in wheels.carried if w.name not in {canon(d) for d in drop}]
    parts_dir = work / "parts"
    budget = CARRY_LIMIT - tree_bytes() - CARRY_MARGIN
    manifest = write_parts(wheels, parts_dir, budget)
    log(describe(manifest))
    t_parts = time.monotonic()
    py = standin_interpreter(wheels, cache)
    t_venv = time.monotonic()
    result: dict[str, Any] = {"calls": [], "out": [], "manifest": manifest}
    machine_work = work / "machine"
    shutil.rmtree(machine_work, ignore_errors=True)
    for call in manifest["calls"]:
        out = work / f"out-{plan}{call['call']}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        args = ["bash", str(parts_dir / call["carries"] / "run.sh"), "--rehearsal", "--work", str(machine_work),
                "--plan", plan, "--time-limit-s", str(REHEARSAL_CALL_LIMIT_S)]
        if stop_after_imports:
            args.append("--stop-after-imports")
        log(f"== rehearsal call {call['call']}: {' '.join(args[1:])}")
        proc = subprocess.run(args, cwd=REPO_ROOT, env=rehearsal_env(py, out), timeout=1200)
        record = json.loads((out / f"run-{plan}{call['call']}.json").read_text())
        result["calls"].append((proc.returncode, record))
        result["out"].append(out)
        if proc.returncode != 0:
            break
    result["seconds"] = {"wheels_and_parts": round(t_parts - t0, 1), "standin_interpreter": round(t_venv - t_parts, 1),
                         "calls": round(time.monotonic() - t_venv, 1), "total": round(time.monotonic() - t0, 1)}
    log(f"== rehearsal: {result['seconds']}")
    return result


def collect(dirs: list[Path], results: Path = REPO_ROOT / "docs" / "results") -> Path:
    """Copy the files a GPU run returned into docs/results/<date>-<gpu>/ (the date and GPU of its run records)."""
    records = [json.loads(p.read_text()) for d in dirs for p in sorted(d.glob("run-*.json"))]
    if not records:
        raise SystemExit("no run-*.json in " + ", ".join(map(str, dirs)))
    env = next((r["environment"] for r in records if r.get("environment")), {})
    gpu = re.sub(r"[^a-z0-9]+", "-", env.get("gpu", "gpu").lower()).strip("-").replace("nvidia-", "")
    dest = results / f"{records[0]['started_utc'][:10]}-{gpu}"
    dest.mkdir(parents=True, exist_ok=True)
    for d in dirs:
        for f in sorted(d.iterdir()):
            if f.is_file():
                shutil.copyfile(f, dest / f.name)
    log(f"copied into {dest}: GPU {env.get('gpu')}, driver {env.get('driver')}, torch {env.get('torch')}, "
        f"commit {records[0]['commit']}")
    return dest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.gpu_run", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare", help="derive the wheels, write .whl/pN/ and the per-call scripts")
    pp.add_argument("--out", type=Path, default=PARTS_DIR)
    pr = sub.add_parser("rehearse", help="the whole run on this CPU over a stand-in interpreter")
    pr.add_argument("--cache", type=Path, default=REPO_ROOT / ".cache" / "gpu-run" / "wheels")
    pr.add_argument("--work", type=Path, default=None, help="default: a temporary directory")
    pr.add_argument("--plan", default="a", choices=sorted(PLANS))
    pc = sub.add_parser("call", help="(on the GPU machine, through .whl/pN/run.sh) one call of the run")
    pc.add_argument("part_dir", type=Path)
    pc.add_argument("--plan", default="a", choices=sorted(PLANS))
    pc.add_argument("--out", type=Path, default=None, help="default: $OUT")
    pc.add_argument("--work", type=Path, default=Path(MACHINE_WORK))
    pc.add_argument("--time-limit-s", type=float, default=CALL_LIMIT_S - 20)
    pc.add_argument("--install-only", action="store_true", help="stash and install this part; run no phase")
    pc.add_argument("--stop-after-imports", action="store_true", help=argparse.SUPPRESS)
    pc.add_argument("--rehearsal", action="store_true", help="CPU, tiny preset, small sizes (the rehearsal)")
    sub.add_parser("show", help="print the plans: each call's phases, budgets and exact commands on the GPU")
    pl = sub.add_parser("collect", help="copy returned files into docs/results/<date>-<gpu>/")
    pl.add_argument("dirs", nargs="+", type=Path)
    args = p.parse_args(argv)

    if args.cmd == "prepare":
        prepare(args.out)
        return 0
    if args.cmd == "rehearse":
        work = args.work or Path(tempfile.mkdtemp(prefix="gpu-run-rehearsal-"))
        result = rehearse(args.cache, work, plan=args.plan)
        codes = [c for c, _ in result["calls"]]
        log(f"rehearsal exit codes per call: {codes}; files: {', '.join(map(str, result['out']))}")
        return 0 if codes and all(c == 0 for c in codes) and len(codes) == len(result["manifest"]["calls"]) else 1
    if args.cmd == "collect":
        collect(args.dirs)
        return 0
    if args.cmd == "show":
        show()
        return 0
    out = args.out or Path(os.environ.get("OUT") or "")
    if not str(out):
        p.error("no --out and no $OUT")
    call = Call(args.part_dir.resolve(), out, args.work, args.plan, args.rehearsal, args.time_limit_s)
    if args.stop_after_imports:
        try:
            call.stash_part()
            call.check_parts()
            call.install()
            call.check_imports()
            call.record["status"] = "imports resolve"
            return 0
        except CallFailed as exc:
            call.record.update(status=exc.status, detail=exc.detail)
            call.say(f"STOPPED: {exc.status}: {exc.detail}")
            return exc.exit_code
        finally:
            call.save_record()
    return call.run(args.install_only)


if __name__ == "__main__":
    sys.exit(main())
