"""Build the compile artifacts a compiled replica loads at start (serve_app/model/compile_cache.py).

    python -m serve_app.build_compile_cache [--out DIR] [setting=value ...]

Reads the settings as the service does (defaults, ``SDTURBO_*`` variables, then ``setting=value``
arguments, the device's defaults applied), resolves the model as the app does, and runs what a model
replica runs before its warm-up generations (``serve_app.model.load_for_serving``): the UNet and the
decoders compiled for every batch bucket x size. It then writes what was compiled as
``<key>.bin`` + ``<key>.json`` into ``--out``, by default where the ``compile_artifacts`` setting
looks for them ('auto': the model directory's ``compile-cache/``). Tar that directory into
model.tar.gz and every instance of the endpoint starts from the artifacts.

The key holds the GPU's name and compute capability, torch's version and the serving settings that
shape the graphs, so build with the endpoint's settings and torch **on the endpoint's GPU type**
(in its image: ``docker run --gpus all -v $PWD/model:/opt/ml/model IMAGE python -m
serve_app.build_compile_cache compile=reduce-overhead`` on the instance type, once the image keeps
triton and a C compiler: docs/container.md); a replica whose key differs skips the file, logs why,
and compiles from scratch.

Exit codes: 0 written; 1 the model could not be loaded or the files not written; 2 bad settings or
nothing to compile.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from serve_app.logs import configure_logging
from serve_app.settings import Settings, setting_arguments


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, dict[str, str]]:
    p = argparse.ArgumentParser(prog="python -m serve_app.build_compile_cache", description=__doc__.splitlines()[0])
    p.add_argument("--out", help="folder to write into (default: where compile_artifacts looks, e.g. "
                                 "<model dir>/compile-cache)")
    p.add_argument("settings", nargs="*", metavar="setting=value", help="settings, as `serve run` takes them")
    args = p.parse_args(argv)
    try:
        return args, setting_arguments(args.settings)
    except ValueError as exc:
        p.error(str(exc))


def build(settings: Settings, out: str | None) -> dict:
    """Compile what a replica with ``settings`` compiles and save the artifacts; returns the summary."""
    from serve_app.app import resolve_sources
    from serve_app.model import artifacts_folder, load_for_serving, save_compile_artifacts, select_device

    # 1. The settings as the replica sees them: the device's defaults applied (serve_app/app.py).
    device_kind = select_device(settings.device)
    settings = settings.for_device(device_kind)
    if settings.unet_compile_mode == "off" and settings.decoder_compile_mode == "off":
        raise ValueError("nothing to compile: set compile (and/or compile_decoder) to a mode, as the endpoint will")
    # 2. The model as the app resolves it (the default model, with its TAESD).
    resolved = resolve_sources(settings, device_kind)
    folder = Path(out) if out else artifacts_folder(settings.compile_artifacts, resolved.local_dir)
    if folder is None:
        raise ValueError("compile_artifacts is 'off': name the folder to write with --out")
    # 3. Compile as the replica does, from scratch (no artifacts loaded), then save.
    started = time.perf_counter()
    served = load_for_serving(resolved, **{**settings.serving_options, "compile_artifacts": "off"})
    build_s = round(time.perf_counter() - started, 1)
    assert served.compile_key is not None  # something compiles (step 1)
    path = save_compile_artifacts(folder, served.compile_key, build_s=build_s, model=resolved.model_id,
                                  revision=resolved.revision)
    return {"path": str(path), "key": served.compile_key.name, "bytes": path.stat().st_size, "build_s": build_s,
            **served.compile_key.as_dict()}


def main(argv: list[str] | None = None) -> int:
    args, overrides = parse_args(argv)
    try:
        settings = Settings.load(overrides)
    except ValueError as exc:
        print(f"build_compile_cache: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    from serve_app.model import ModelLoadError

    try:
        summary = build(settings, args.out)
    except ValueError as exc:
        print(f"build_compile_cache: {exc}", file=sys.stderr)
        return 2
    except (ModelLoadError, OSError, RuntimeError) as exc:
        print(f"build_compile_cache: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
