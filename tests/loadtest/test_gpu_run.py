"""loadtest.gpu_run: the wheel set derived from the lock, the parts, a call's checks and budgets, and the
rehearsal of the whole GPU run on this CPU (the same parts and call scripts over a stand-in interpreter)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest import gpu_run
from tests.loadtest.loadtest_helpers import REPO_ROOT


@pytest.fixture(scope="session")
def wheel_cache() -> Path:
    """Downloaded wheels (and the stand-in interpreter) kept across runs and clones in the user's cache
    directory, as pip keeps its own: a fresh clone on the same machine (CI's) does not download ~500 MB
    again. Only missing (name, version) wheels are fetched, so an empty cache still works, slower."""
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "sd-turbo-serve" / "gpu-run-wheels"


# -- what the machine has, what the lock pins -------------------------------------------------------------

def test_the_machine_package_list_is_one_dated_file():
    machine = gpu_run.read_machine_packages()
    assert re.fullmatch(r"gpu-machine-packages-\d{4}-\d{2}-\d{2}\.txt", machine.path.name)
    assert machine.python.startswith("3.12.") and machine.torch.startswith("2.11")
    assert machine.versions["torch"] == "2.11.0" and machine.versions["transformers"] == "5.17.0"
    assert "ray" not in machine.versions and "swagger-ui-bundle-v2" not in machine.versions


def test_lock_pins_follow_the_target_interpreter():
    gpu = gpu_run.Target("3.12.3", gpu_run.GPU_PLATFORMS)
    host = gpu_run.Target("3.11.7", ("manylinux_2_36_x86_64",))
    assert gpu_run.lock_pins(gpu)["numpy"] == "2.5.5" and gpu_run.lock_pins(host)["numpy"] == "2.4.6"
    assert "colorama" not in gpu_run.lock_pins(gpu)  # Windows only
    assert gpu_run.lock_pins(gpu)["ray"] == "2.60.0"


def test_no_hand_kept_wheel_list_is_left():
    name = "gpu_" + "wheels"
    assert not (REPO_ROOT / "loadtest" / f"{name}.txt").exists()
    hits = subprocess.run(["git", "grep", "-l", name], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    assert hits == [], hits


def test_the_parts_folder_is_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", ".whl/p1/manifest.json"], cwd=REPO_ROOT)
    assert ignored.returncode == 0


def test_the_machine_side_needs_nothing_but_the_standard_library():
    # On the GPU machine `call` runs before anything is installed: no third-party import at module level.
    code = f"import sys; sys.path.insert(0, {str(REPO_ROOT)!r}); import loadtest.gpu_run as g; print(g.MACHINE_WORK)"
    proc = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and proc.stdout.strip() == gpu_run.MACHINE_WORK, proc.stderr


# -- parts: sizes, chunks, the model path whole in part 1 -----------------------------------------------

def _fake_wheel_set(tmp_path: Path, sizes: dict[str, int], model: set[str]) -> gpu_run.WheelSet:
    wheels = []
    for name, size in sizes.items():
        path = tmp_path / "cache" / f"{name}-1.0-py3-none-any.whl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))
        wheels.append(gpu_run.Wheel(name, "1.0", path, "not on the machine"))
    return gpu_run.WheelSet(gpu_run.Target("3.12.3", gpu_run.GPU_PLATFORMS), wheels, {}, {}, model)


def test_parts_stay_under_the_budget_split_big_wheels_and_keep_the_model_path_whole(tmp_path):
    mib = gpu_run.MIB
    ws = _fake_wheel_set(tmp_path, {"big": 13 * mib, "model-a": 3 * mib, "model-b": mib, "small": mib // 2},
                         {"model-a", "model-b"})
    manifest = gpu_run.write_parts(ws, tmp_path / "parts", 6 * mib)
    assert all(p["bytes"] <= 6 * mib for p in manifest["parts"])
    p1 = {f["name"] for f in manifest["parts"][0]["files"]}
    assert {"model-a-1.0-py3-none-any.whl", "model-b-1.0-py3-none-any.whl"} <= p1
    big = manifest["wheels"]["big-1.0-py3-none-any.whl"]
    assert len(big["pieces"]) >= 3
    joined = b"".join((tmp_path / "parts" / piece["part"] / piece["file"]).read_bytes() for piece in big["pieces"])
    assert joined == (tmp_path / "cache" / "big-1.0-py3-none-any.whl").read_bytes()
    for part in manifest["parts"]:
        pdir = tmp_path / "parts" / part["name"]
        assert json.loads((pdir / "manifest.json").read_text())["id"] == manifest["id"]
        assert "gpu_run call" in (pdir / "run.sh").read_text()
    assert [c["needs_parts"] for c in manifest["calls"]][:2] == [["p1"], ["p1", "p2"]]


def _call(part_dir: Path, out: Path, work: Path, *extra: str) -> tuple[int, dict]:
    proc = subprocess.run([sys.executable, "-m", "loadtest.gpu_run", "call", str(part_dir), "--out", str(out),
                           "--work", str(work), *extra], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    plan = "a"
    record = json.loads(next(out.glob(f"run-{plan}*.json")).read_text())
    return proc.returncode, record


def test_a_call_stops_before_spending_time_when_a_part_is_missing_or_damaged(tmp_path):
    mib = gpu_run.MIB
    ws = _fake_wheel_set(tmp_path, {"big": 5 * mib, "model-a": mib}, {"model-a"})
    manifest = gpu_run.write_parts(ws, tmp_path / "parts", 3 * mib)
    assert len(manifest["parts"]) >= 2
    # Call 2 on a machine that never ran call 1 (or was given back since): part 1 is not there.
    code, record = _call(tmp_path / "parts" / "p2", tmp_path / "out2", tmp_path / "machine")
    assert code == 3 and record["status"] == "parts missing"
    assert "p1" in record["detail"] and "call 1" in record["detail"] and record["phases"] == {}
    # A damaged file of the part a call carries.
    victim = next((tmp_path / "parts" / "p1").glob("*.whl*"))
    victim.write_bytes(victim.read_bytes()[:-1] + b"!")
    code, record = _call(tmp_path / "parts" / "p1", tmp_path / "out1", tmp_path / "machine")
    assert code == 3 and record["status"] == "part damaged" and victim.name in record["detail"]


def test_phases_are_skipped_when_their_budget_does_not_fit_and_stopped_when_they_overrun(tmp_path, monkeypatch):
    ws = _fake_wheel_set(tmp_path, {"model-a": 1000}, {"model-a"})
    gpu_run.write_parts(ws, tmp_path / "parts", gpu_run.MIB)
    monkeypatch.setattr(gpu_run, "PHASES", {
        "presets": gpu_run.Phase("presets", "direct", 2, ()),
        "sweep": gpu_run.Phase("sweep", "direct", 1, ()),
        "gputests": gpu_run.Phase("gputests", "gputests", 10_000, ()),
    })
    monkeypatch.setattr(gpu_run, "CALL_RESERVE_S", 0)
    commands = {"presets": [sys.executable, "-c", "print('built')"],
                "sweep": [sys.executable, "-c", "import time; print('sweeping', flush=True); time.sleep(30)"]}
    monkeypatch.setattr(gpu_run, "phase_command", lambda name, prof, work: commands[name])
    call = gpu_run.Call(tmp_path / "parts" / "p1", tmp_path / "out", tmp_path / "machine", "a", True, 600)
    call.phases = ["presets", "sweep", "gputests"]
    started = time.monotonic()
    assert call.run_phases() is False
    assert time.monotonic() - started < 25
    phases = call.record["phases"]
    assert phases["presets"]["status"] == "ok"
    assert phases["sweep"]["status"] == "timed out"
    assert phases["gputests"]["status"] == "skipped" and "budget" in phases["gputests"]["detail"]
    # Each phase's entry reached $OUT the moment it ended, the timed-out one too.
    direct = json.loads((tmp_path / "out" / "direct.json").read_text())
    assert direct["sweep"]["status"] == "timed out" and direct["presets"]["status"] == "ok"
    assert "Phase sweep: timed out" in (tmp_path / "out" / "direct.md").read_text()
    assert "sweeping" in (tmp_path / "out" / "run-a1.log").read_text()


def test_every_benchmark_phase_command_is_one_the_tool_accepts(tmp_path):
    from loadtest.gpu_benchmark import build_parser

    for profile in (gpu_run.GPU, gpu_run.REHEARSAL):
        for name in ("sweep", "compiled", "service"):
            cmd = gpu_run.phase_command(name, profile, tmp_path)
            assert cmd[1:3] == ["-m", "loadtest.gpu_benchmark"]
            args = build_parser().parse_args(cmd[3:])
            assert args.model == profile.model and args.device == profile.device
    assert gpu_run.phase_command("gputests", gpu_run.GPU, tmp_path)[3:6] == ["tests/gpu", "-k", "not compile"]


def test_sdxl_turbo_is_measured_directly_and_mixed_with_sd_turbo_in_the_service(tmp_path):
    from loadtest.gpu_benchmark import build_parser

    # The rehearsal stands tiny-xl in for sdxl-turbo-random as tiny stands in for sd-turbo-random.
    assert (gpu_run.GPU.model, gpu_run.GPU.model_xl) == ("sd-turbo-random", "sdxl-turbo-random")
    assert (gpu_run.REHEARSAL.model, gpu_run.REHEARSAL.model_xl) == ("tiny", "tiny-xl")
    for profile in (gpu_run.GPU, gpu_run.REHEARSAL):
        sweep = build_parser().parse_args(gpu_run.phase_command("sweep_xl", profile, tmp_path)[3:])
        assert (sweep.model, sweep.size, sweep.tiny_decoder, sweep.skip_service) == (
            profile.model_xl, profile.size, "taesdxl-random", True)
        mix = build_parser().parse_args(gpu_run.phase_command("service_mix", profile, tmp_path)[3:])
        assert (mix.models, mix.mix, mix.skip_sweep) == (f"{profile.model},{profile.model_xl}", "1:1", True)
        presets = gpu_run.phase_command("presets_xl", profile, tmp_path)
        assert repr(profile.model_xl) in presets[2] and "taesdxl-random" in presets[2]
    assert gpu_run.GPU.size == "512x512"  # SDXL-Turbo at its training size, 1 step (gpu_benchmark's only)


@pytest.mark.parametrize("plan", sorted(gpu_run.PLANS))
def test_every_plan_fits_its_machine_time(plan):
    # The machine's start (about 2 minutes) and about 40 s per call (transfer, stash, install, imports),
    # then the phase budgets, presets counted once: at most 12 of the 15 minutes, 3 to spare.
    n_calls = 2 if gpu_run.PLANS[plan]["last"] else 1
    phases = [p for call in range(1, n_calls + 1) for p in gpu_run.phases_for(plan, call, n_calls)]
    budgets = sum(gpu_run.PHASES[p].budget_s for p in dict.fromkeys(phases))
    assert 120 + 40 * n_calls + budgets <= 12 * 60, (plan, budgets)
    for call in range(1, n_calls + 1):  # and each call its 10 minutes (presets built by call 1 are not redone)
        mine = [p for p in gpu_run.phases_for(plan, call, n_calls) if call == 1 or p not in gpu_run.PRESET_PHASES]
        assert sum(gpu_run.PHASES[p].budget_s for p in mine) + gpu_run.CALL_RESERVE_S <= gpu_run.CALL_LIMIT_S

def test_the_model_call_phases_are_commands_the_tools_accept_and_plan_f_fits_twelve_minutes(tmp_path):
    from loadtest import gpu_benchmark, jpeg_benchmark

    for profile in (gpu_run.GPU, gpu_run.REHEARSAL):
        params = gpu_run.MODEL_CALL_PARAMETERS[profile.device]
        compiled = gpu_run.phase_command("compiled_model", profile, tmp_path)
        args = gpu_benchmark.build_parser().parse_args(compiled[3:])
        # Eager, then compiled (UNet and decoders) for exactly the swept batch sizes, at the profile's mode.
        assert args.configs == f"{profile.config},{profile.config}-compile" and args.decoders == "full,tiny"
        assert args.batch_sizes == args.compile_buckets == params["batch_sizes"]
        assert args.decoder_compile_mode == params["compile_mode"] and args.skip_service
        jpeg = jpeg_benchmark.build_parser().parse_args(gpu_run.phase_command("jpeg", profile, tmp_path)[3:])
        assert jpeg.model == profile.model and jpeg.device == profile.device
    assert gpu_run.MODEL_CALL_PARAMETERS["cuda"]["compile_mode"] == "reduce-overhead"
    # One call: the machine's start (about 120 s) and the call's transfer and checks (about 40 s) with
    # the phases' budgets within 12 minutes (15 minus 3 to spare).
    phases = gpu_run.phases_for("f", 1, 1)
    assert {"jpeg", "compiled_model"} <= set(phases)
    assert 120 + 40 + sum(gpu_run.PHASES[p].budget_s for p in phases) <= 12 * 60


def test_collect_files_the_returned_results_under_their_date_and_gpu(tmp_path):
    for call, files in (("a1", ("direct.json", "direct.md")), ("a2", ("service.json",))):
        back = tmp_path / "back" / call
        back.mkdir(parents=True)
        record = {"started_utc": "2026-12-10T09:00:00+00:00", "commit": "abc1234",
                  "environment": {"gpu": "NVIDIA H200", "driver": "580.159.04", "torch": "2.11.0+cu130"}}
        (back / f"run-{call}.json").write_text(json.dumps(record))
        for f in files:
            (back / f).write_text("{}")
    dest = gpu_run.collect([tmp_path / "back" / "a1", tmp_path / "back" / "a2"], tmp_path / "results")
    assert dest == tmp_path / "results" / "2026-12-10-h200"
    assert {p.name for p in dest.iterdir()} == {"run-a1.json", "run-a2.json", "direct.json", "direct.md", "service.json"}


# -- the GPU machine's wheel set (downloads cp312 wheels once into the test cache) ---------------------------

@pytest.mark.timeout(1200)
def test_the_gpu_wheel_set_is_derived_from_the_lock_and_fits_two_calls(wheel_cache, tmp_path):
    machine = gpu_run.read_machine_packages()
    target = gpu_run.gpu_target(machine)
    ws = gpu_run.derive(target, machine, wheel_cache / target.label)
    carried = {w.name: w for w in ws.carried}
    # What the machine lacks travels, the playground's Swagger UI bundle and the load tool included.
    for name in ("ray", "diffusers", "fastapi", "pydantic-settings", "swagger-ui-bundle-v2", "locust", "gevent"):
        assert name in carried, name
    # The project's exact pin travels where the machine has another version; torch's build never does.
    assert carried["transformers"].version == "5.23.0"
    assert not {"torch", "triton", "numpy", "pytest", "matplotlib"} & set(carried)
    assert {"boto3", "botocore"} <= set(ws.left_out) and "boto3" not in carried
    assert {"diffusers", "transformers", "pydantic"} <= ws.model_path
    # Every lock pin for the target is carried, left to the machine or left out on purpose; or it is
    # needed only by the lock's version of a package the machine has at another (huggingface-hub 2.4.0
    # needs httpx2; the machine's 1.33.0 does not).
    pins = gpu_run.lock_pins(target)
    unaccounted = {n for n in pins if n not in carried and n not in ws.machine_held and n not in ws.left_out
                   and not gpu_run.MACHINE_BUILD.match(n)}
    replaced = {n for n, v in ws.machine_held.items() if n in pins and v != pins[n]}
    assert replaced >= {"huggingface-hub", "tokenizers", "numpy"}
    requires = gpu_run.lock_requirements()
    for n in unaccounted:
        dependents = {pkg for pkg, reqs in requires.items() if n in reqs}
        assert dependents and dependents <= replaced | unaccounted, (n, dependents)
    budget = gpu_run.CARRY_LIMIT - gpu_run.tree_bytes() - gpu_run.CARRY_MARGIN
    manifest = gpu_run.write_parts(ws, tmp_path / "parts", budget)
    assert len(manifest["parts"]) <= 2, gpu_run.describe(manifest)
    assert all(p["bytes"] + manifest["tree_bytes"] < gpu_run.CARRY_LIMIT for p in manifest["parts"])
    p1 = {piece["file"] for w in manifest["wheels"].values() if w["model_path"] for piece in w["pieces"]}
    assert p1 <= {f["name"] for f in manifest["parts"][0]["files"]}
    print("\n" + gpu_run.describe(manifest))


# -- the rehearsal: the whole run on this CPU ------------------------------------------------------------------

@pytest.fixture(scope="module")
def rehearsal(wheel_cache, tmp_path_factory):
    return gpu_run.rehearse(wheel_cache, tmp_path_factory.mktemp("rehearsal"))


@pytest.mark.integration
@pytest.mark.timeout(2400)
def test_the_rehearsal_runs_every_call_of_the_plan_end_to_end(rehearsal):
    manifest = rehearsal["manifest"]
    assert len(rehearsal["calls"]) == len(manifest["calls"]) >= 2
    for (code, record), out in zip(rehearsal["calls"], rehearsal["out"], strict=True):
        assert code == 0, (record, (out / f"run-a{record['call']}.log").read_text()[-4000:])
        assert record["status"] == "ok" and all(p["status"] == "ok" for p in record["phases"].values())
        files = [f for f in out.iterdir() if f.is_file()]
        assert len(files) <= 8, files  # what a call can bring back
        # The stand-in interpreter ran every call, not the project's own environment.
        executable = record["environment"]["executable"]
        assert "standin-" in executable and not executable.startswith(sys.prefix), executable
    first, last = rehearsal["out"][0], rehearsal["out"][-1]
    direct = json.loads((first / "direct.json").read_text())
    rows = direct["sweep"]["result"]["batch_sweep"]
    assert {"fp32 full", "fp32 tiny"} <= set(rows) and all("images_s" in r for r in rows["fp32 full"])
    tests = json.loads((first / "gputests.json").read_text())["gputests"]["result"]["tests"]
    assert tests and all(t["outcome"].startswith("skipped") for t in tests)  # no CUDA here: collected, skipped
    service = json.loads((last / "service.json").read_text())["service"]["result"]
    app = service["servers"]["app"]
    assert app["ready_s"] > 0 and all(level["ok"] > 0 for level in app["levels"])
    assert service["ceiling"] is not None  # from call 1's sweep, on the same machine
    assert app["replicas"]["replicas"], app["replicas"]
    print(f"\nrehearsal seconds: {rehearsal['seconds']}")


@pytest.mark.integration
@pytest.mark.timeout(1200)
def test_the_rehearsal_fails_when_a_needed_wheel_is_missing(rehearsal, wheel_cache, tmp_path):
    # As the hand-kept list of 2026-11-25 did: no Swagger UI bundle, which serve_app/pages.py imports.
    result = gpu_run.rehearse(wheel_cache, tmp_path, drop=("swagger-ui-bundle-v2",), stop_after_imports=True)
    code, record = result["calls"][-1]
    assert code == 5 and record["status"] == "imports fail"
    assert "swagger_ui_bundle" in record["detail"]
