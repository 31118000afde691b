"""GPU benchmark: the direct-call ceiling of the model path, and the service that ships under load.

On an H100 (commands with the wheels to carry: docs/benchmarks.md, section 4):

    python -m loadtest.gpu_benchmark --model sd-turbo-random --device cuda --out results/gpu-h100

Smoke run on a CPU (what the test suite runs; it checks the plumbing, not the numbers):

    python -m loadtest.gpu_benchmark --model tiny --device cpu --quick --out /tmp/gpu-smoke

At one size (default 512x512) and one step:

1. **Batch sweep** (direct pipeline calls, the ceiling) per configuration (cumulative: ``fp32``
   -> ``fp16`` -> ``fp16-cl`` (channels-last UNet+VAE) -> ``fp16-cl-compile`` (the UNet compiled
   per batch bucket as a replica with ``compile`` on does, for the swept sizes in
   ``--compile-buckets``, mode ``--decoder-compile-mode``; with ``--decoders`` the decoders are
   compiled too); configurations are cumulative only where the next one adds to the last, e.g.
   ``fp16-cl,fp16`` reloads): for each batch size, ``--iters`` timed calls after warm-up;
   images/s (batch / mean call time), p50/p95 call latency, peak device memory. ``fp32`` is the
   naive path (diffusers' float32 PIL output); the others call the service's ``SDTurboGenerator``.
2. **The service** (unless ``--skip-service``): the real app, ``python -m loadtest.app_server``
   (``serve_app.app:build_app`` -> Ray Serve -> HTTP) on a free loopback port with the app's own
   settings (its batching knobs included: none is set here; ``--app-arg KEY=VALUE`` overrides),
   driven by the load tool (``python -m loadtest run``) at each ``--concurrency`` level. Reported
   per level: images/s, p50/p95/p99, the server-reported batch-size histogram, and images/s as a
   fraction of the **ceiling**: the direct-call images/s of the configuration the app runs, at
   the app's ``max_batch_size``. ``--baseline`` also drives the naive baseline server
   (``loadtest.baseline_server``: fp32, PNG, one request at a time) on the same device.

**Several models** (``--models sd-turbo-random,sdxl-turbo-random [--mix 1:1]``): the service
serves every model named (``models=...``, one deployment each) and each request names one of them
with the given shares (the load tool's ``--models``/``--mix``); each model's images/s, p50 and p95
are reported per level beside the totals. The batch sweep stays ``--model``'s.

**Decoders** (``--decoders full,full-compiled,tiny``): the batch sweep is repeated per VAE
decoder through the service's ``SDTurboGenerator`` (for every configuration, fp32 included):
``full`` (the model's VAE, eager), ``full-compiled`` (the replica's ``CompiledDecoder`` for the
sweep's batch sizes, ``--decoder-compile-mode``, compile time recorded), ``tiny`` (TAESD from
``--tiny-decoder``, by default the random-weight ``taesd-random`` preset of its architecture) and
``tiny-compiled``; each decoder's parameters and FLOPs per image are printed, and each batch size
gets one more call, synchronised at stage boundaries, printed as a profile line: text encoder /
UNet / decode / other ms. Rows are named ``<configuration> <decoder>`` (use ``--skip-service``).

Writes ``gpu_benchmark.json``, ``gpu_benchmark.md`` and ``gpu_plot.png`` to ``--out`` (and each
server's raw results and log below it).
"""
from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import platform
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import report
from loadtest.stats import LevelSummary, mean_call_size, percentile
from loadtest.workload import DEFAULT_PROMPTS, parse_int_list, parse_model_mix, parse_models, parse_sizes

BASELINE_NAME = "baseline (fp32, PNG, no batching)"


@dataclass(frozen=True)
class Config:
    name: str
    dtype: str
    channels_last: bool
    compile: bool


def make_configs(names: list[str]) -> list[Config]:
    out = []
    for n in names:
        dtype = "float16" if n.startswith("fp16") else "bfloat16" if n.startswith("bf16") else "float32"
        out.append(Config(n, dtype, "-cl" in n, n.endswith("-compile")))
    return out


def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "date_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "host": platform.node(),
    }
    try:
        import diffusers

        info["diffusers"] = diffusers.__version__
    except Exception:  # noqa: BLE001
        pass
    if device.startswith("cuda"):
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_mem_gib=round(p.total_memory / 2**30, 1),
                    cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version())
    else:
        info.update(gpu="none", cpus=__import__("os").cpu_count())
    return info


class Model:
    """A loaded pipeline in one configuration; ``apply`` moves it to the next (cumulative)."""

    def __init__(self, model: str, device: str, cache_dir: str | None):
        self.model, self.device, self.cache_dir = model, device, cache_dir
        self.pipe = None
        self.cfg: Config | None = None
        self.compile_s: float | None = None
        # Decoder sweeps: the decoder in use ("full", "full-compiled", "tiny", ...) and its set.
        self.decoder: str | None = None
        self.decoder_set = None
        self.decoder_cost: dict[str, float] = {}

    def apply(self, cfg: Config, compile_mode: str = "default", buckets: list[int] | None = None,
              size: tuple[int, int] = (512, 512)) -> float | None:
        """Move to ``cfg``; a ``-compile`` configuration compiles the UNet as a replica does (the
        bucketed UNet of serve_app/model/buckets.py, for ``buckets`` at ``size``, ``compile_mode``).
        Returns the UNet's compile seconds (None when nothing was compiled)."""
        import torch

        from serve_app.model import compile_unet, configure_pipeline, load_pipeline

        cur = self.cfg
        cumulative = (cur is not None and cur.dtype == cfg.dtype and (cfg.channels_last or not cur.channels_last)
                      and (cfg.compile or not cur.compile))
        if not cumulative:
            self.pipe = None
            gc.collect()
            if self.device.startswith("cuda"):
                torch.cuda.empty_cache()
            kwargs: dict[str, Any] = dict(model=self.model, device=self.device, dtype=cfg.dtype)
            if self.cache_dir:
                kwargs["cache_dir"] = self.cache_dir
            self.pipe = load_pipeline(**kwargs)
            cur = None
        if cfg.channels_last and not (cur and cur.channels_last):
            self.pipe.unet.to(memory_format=torch.channels_last)
            self.pipe.vae.to(memory_format=torch.channels_last)
        compile_s = None
        if cfg.compile and not (cur and cur.compile):
            configure_pipeline(self.pipe, compile_mode=compile_mode, buckets=buckets or [1], sizes=[size])
            compile_s = compile_unet(self.pipe).seconds
        self.cfg = cfg
        self.decoder, self.decoder_set = None, None
        return compile_s

    def use_decoder(self, decoder: str | None, tiny_source: str, tiny_revision: str, compile_mode: str,
                    batch_sizes: list[int], width: int, height: int) -> float | None:
        """Decode with ``decoder`` from now on (None: back to the configuration's own path).

        A ``-compiled`` decoder is compiled here for exactly ``batch_sizes`` at this size;
        returns the seconds that took (None when nothing was compiled).
        """
        import torch

        from serve_app.model import load_tiny_decoder, resolve_tiny_decoder
        from serve_app.model.decoders import CompiledDecoder, DecoderSet, LatentDecoder
        from serve_app.model.profiling import decoder_cost

        self.decoder, self.decoder_set = decoder, None
        if decoder is None:
            return None
        name, _, compiled = decoder.partition("-")
        vae = self.pipe.vae
        if name == "tiny":
            resolved = resolve_tiny_decoder(tiny_source, tiny_revision, "/nonexistent", self.cache_dir or "/tmp/sdc")
            vae = load_tiny_decoder(resolved, self.pipe.device, self.pipe.unet.dtype)
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()
        scale = self.pipe.vae_scale_factor
        self.decoder_cost = decoder_cost(vae, height // scale, width // scale)
        measured: Any = LatentDecoder(name, vae)
        compile_s = None
        if compiled:
            # The replica's own compiled decoder, compiled for exactly the swept batch sizes.
            measured = CompiledDecoder(measured, compile_mode, batch_sizes, [(width, height)], scale)
            compile_s = measured.compile(self.pipe.unet.config.out_channels, self.pipe.unet.dtype,
                                         self.pipe.device).seconds
        self.decoder_set = DecoderSet({name: measured})
        return compile_s

    def generate(self, prompts: list[str], seeds: list[int], width: int, height: int) -> list:
        import torch

        if self.decoder is not None or (self.cfg is not None and self.cfg.dtype != "float32"):
            # Optimised configurations and decoder sweeps run the service's own generator
            # (per-request generators, decoding and uint8 quantisation on the device, one copy
            # back), exactly as a replica does.
            return [g.image for g in self.service_generator().generate(self.specs(prompts, seeds, width, height))]
        # fp32 is the naive baseline: diffusers' own float32 -> PIL post-processing.
        gen_dev = self.device if self.device.startswith("cuda") else "cpu"
        gens = [torch.Generator(device=gen_dev).manual_seed(s) for s in seeds]
        with torch.inference_mode():
            return self.pipe(prompt=prompts, num_inference_steps=1, guidance_scale=0.0, width=width, height=height,
                             generator=gens, output_type="pil").images

    def service_generator(self):
        from serve_app.model import SDTurboGenerator, pin_execution_device

        # The pipeline as a replica configures it: its execution device pinned (configure_pipeline).
        return SDTurboGenerator(pin_execution_device(self.pipe), decoders=self.decoder_set)

    def specs(self, prompts: list[str], seeds: list[int], width: int, height: int) -> list:
        from serve_app.batching import GenerationSpec

        decoder = (self.decoder or "full").partition("-")[0]
        return [GenerationSpec(prompt=p, seed=s, width=width, height=height, decoder=decoder)
                for p, s in zip(prompts, seeds, strict=True)]

    def profile(self, prompts: list[str], seeds: list[int], width: int, height: int) -> dict[str, float]:
        """One generate() call through the service's generator, timed per stage (ms)."""
        from serve_app.model.profiling import profile_stages

        return profile_stages(self.service_generator(), self.specs(prompts, seeds, width, height))

    def close(self) -> None:
        """Free the device for the service's own replica."""
        import torch

        self.pipe = None
        gc.collect()
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    def reset_peak(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def peak_mib(self) -> float | None:
        import torch

        if self.device.startswith("cuda"):
            return torch.cuda.max_memory_allocated() / 2**20
        return None


def batch_sweep(m: Model, batch_sizes: list[int], iters: int, warmup: int, width: int, height: int,
                buckets: list[int] | None, label: str | None = None) -> list[dict[str, Any]]:
    label = label or m.cfg.name
    rows = []
    rng = random.Random(0)
    for bs in batch_sizes:
        if buckets and bs not in buckets:
            continue  # compiled UNet: only the bucket shapes
        prompts = [rng.choice(DEFAULT_PROMPTS) for _ in range(bs)]
        m.reset_peak()
        t0 = time.perf_counter()
        try:
            for i in range(warmup):
                m.generate(prompts, list(range(i * bs, (i + 1) * bs)), width, height)
            warm_s = time.perf_counter() - t0
            lat = []
            for _ in range(iters):
                t = time.perf_counter()
                m.generate(prompts, [rng.randrange(2**32) for _ in range(bs)], width, height)
                lat.append((time.perf_counter() - t) * 1000)
        except RuntimeError as exc:  # torch.OutOfMemoryError is a RuntimeError
            rows.append({"batch_size": bs, "error": f"{type(exc).__name__}: {str(exc)[:120]}"})
            break
        mean = sum(lat) / len(lat)
        rows.append({"batch_size": bs, "iters": iters, "warmup_s": warm_s, "images_s": bs / (mean / 1000),
                     "latency_ms_p50": percentile(lat, 50), "latency_ms_p95": percentile(lat, 95),
                     "peak_mem_mib": m.peak_mib()})
        if m.decoder is not None:
            # One more call, synchronised per stage: where the time goes at this batch size.
            rows[-1]["profile_ms"] = prof = m.profile(prompts, list(range(bs)), width, height)
            print(f"   [{label}] profile batch {bs:>2}: text encoder {prof['text_encoder']:.1f} ms, "
                  f"UNet {prof['unet']:.1f} ms, decode {prof['decode']:.1f} ms, other {prof['other']:.1f} ms "
                  f"(total {prof['total']:.1f} ms)", flush=True)
        print(f"   [{label}] batch {bs:>2}: {rows[-1]['images_s']:7.2f} img/s  p50 {rows[-1]['latency_ms_p50']:8.1f} ms"
              f"  p95 {rows[-1]['latency_ms_p95']:8.1f} ms  peak {rows[-1]['peak_mem_mib'] or 0:8.0f} MiB  (warm-up {warm_s:.1f}s)",
              flush=True)
    return rows


# -- 2. the service that ships ------------------------------------------------------------------

def app_settings(app_args: list[str], device: str = "cuda") -> Any:
    """The settings the app will run with on ``device``: its defaults (the device's, from
    serve_app.settings.DEVICE_DEFAULTS), SDTURBO_* from the environment, ``--app-arg``."""
    from serve_app.settings import Settings

    settings = Settings.load(dict(kv.split("=", 1) for kv in app_args))
    return settings.for_device("cuda" if device.startswith("cuda") else "cpu")


def config_of(settings: Any, device: str) -> str:
    """The batch-sweep configuration name of what the app runs (dtype, channels-last, compile)."""
    dtype = settings.dtype if settings.dtype != "auto" else ("float16" if device.startswith("cuda") else "float32")
    name = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}[dtype]
    return name + ("-cl" if settings.channels_last else "") + ("-compile" if settings.unet_compile_mode != "off" else "")


def ceiling_of(batch_sweep_rows: dict[str, list[dict[str, Any]]], config: str, batch: int,
               decoder: str = "full") -> dict[str, Any] | None:
    """The direct-call row the service is measured against: its configuration (with the app's default
    decoder, where the sweep went per decoder) at its max batch."""
    for label in (config, f"{config} {decoder}"):
        for row in batch_sweep_rows.get(label, []):
            if row["batch_size"] == batch and "images_s" in row:
                return {"config": label, **row}
    return None


def run_servers(args: argparse.Namespace, width: int, height: int, out: Path) -> dict[str, Any]:
    """The app (and with ``--baseline`` the naive server) under the load tool, one after the other."""
    from loadtest.benchmark import free_port, serve_target

    load = argparse.Namespace(concurrency=args.concurrency, duration_s=args.duration_s, warmup_s=args.warmup_s,
                              cooldown_s=1.0, size=f"{width}x{height}", output_format=None,
                              start_timeout_s=args.start_timeout_s, ping_hz=5.0, models=args.models, mix=args.mix)
    cache = [f"cache_dir={args.cache_dir}"] if args.cache_dir else []
    device = "cuda" if args.device.startswith("cuda") else "cpu"
    servers: dict[str, Any] = {}
    if args.baseline:
        port = free_port()
        cmd = [sys.executable, "-m", "loadtest.baseline_server", "--model", args.model, "--device", args.device,
               "--port", str(port), "--warmup-size", load.size] + (["--cache-dir", args.cache_dir] if args.cache_dir else [])
        servers["baseline"] = serve_target("baseline", cmd, port, load, out, {})
    port = free_port()
    replicas = out / "app-replicas.json"
    served = f"models={args.models}" if args.models else f"model={args.model}"
    cmd = [sys.executable, "-m", "loadtest.app_server", "--port", str(port), "--stats-out", str(replicas),
           served, f"device={device}", *cache, *args.app_arg]
    servers["app"] = serve_target("app", cmd, port, load, out, {})
    # Each model replica's own counters, read by the app server as it stops (peak device memory included).
    servers["app"]["replicas"] = json.loads(replicas.read_text()) if replicas.is_file() else None
    return servers


def service_figures(app_levels: list[LevelSummary], ceiling: dict[str, Any] | None) -> dict[str, Any]:
    figs: dict[str, Any] = {"ceiling_img_s": ceiling["images_s"] if ceiling else None}
    for lv in app_levels:
        figs[str(lv.concurrency)] = {
            "img_s": lv.throughput_img_s, "p50_ms": lv.latency_ms_p50, "p95_ms": lv.latency_ms_p95,
            "p99_ms": lv.latency_ms_p99, "batch_size_hist": lv.batch_size_hist,
            "mean_call_size": mean_call_size(lv.batch_size_hist),
            "fraction_of_ceiling": lv.throughput_img_s / ceiling["images_s"] if ceiling else None,
        }
    return figs


# -- driver -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.gpu_benchmark", description="direct-call ceiling and the real service on a GPU")
    p.add_argument("--model", default="sd-turbo-random", help="preset name or local diffusers directory")
    p.add_argument("--device", default="cuda")
    p.add_argument("--cache-dir", help="preset cache (default: the service's)")
    p.add_argument("--size", default="512x512")
    p.add_argument("--configs", help="comma list from fp32,fp16,fp16-cl,fp16-cl-compile (default: all on cuda; fp32 on cpu)")
    p.add_argument("--batch-sizes", default="1,2,4,8,12,16", help="direct-call sweep (the app's max_batch_size is always added)")
    p.add_argument("--concurrency", default="1,8,16,32,64", help="closed-loop clients against the service")
    p.add_argument("--iters", type=int, default=10, help="timed calls per batch size")
    p.add_argument("--warmup-iters", type=int, default=2)
    p.add_argument("--duration-s", type=float, default=20.0, help="seconds per concurrency level")
    p.add_argument("--warmup-s", type=float, default=3.0, help="leading seconds of each level not measured")
    p.add_argument("--compile-buckets", default="1,2,4,8,16", help="batch sizes swept with torch.compile")
    p.add_argument("--app-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="build_app argument for the service (repeatable); the batching knobs stay the app's unless given here")
    p.add_argument("--models", help="NAME[,NAME...]: the service serves these together and each request names one "
                   "(a mixed-model workload; per-model figures are added). Default: --model alone")
    p.add_argument("--mix", help="with --models: each model's share of the requests, e.g. 1:1 (default: equal)")
    p.add_argument("--baseline", action="store_true", help="also drive the naive baseline server (fp32, PNG, no batching)")
    p.add_argument("--start-timeout-s", type=float, default=600.0, help="how long a server may take to answer /ping")
    p.add_argument("--skip-sweep", action="store_true", help="service only (no direct-call ceiling)")
    p.add_argument("--skip-service", action="store_true", help="batch sweep only")
    p.add_argument("--ceiling-from", help="with --skip-sweep: an earlier gpu_benchmark.json whose batch sweep gives the ceiling")
    p.add_argument("--decoders", help="batch sweep per decoder through the service's generator: comma list from "
                                       "full,full-compiled,tiny,tiny-compiled (default: the configurations' own path)")
    p.add_argument("--tiny-decoder", default="taesd-random",
                   help="TAESD source for tiny decoders: taesd-random (preset), a directory, or a Hub id")
    p.add_argument("--tiny-decoder-revision", default="", help="Hub revision of --tiny-decoder (see the settings)")
    p.add_argument("--decoder-compile-mode", default=None,
                   help="torch.compile mode of -compiled decoders and of -compile configurations' UNet "
                        "(default: reduce-overhead on cuda, default on cpu)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes and counts (CPU tests)")
    p.add_argument("--out", default=f"results/gpu-{time.strftime('%Y%m%d-%H%M%S')}")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.size = "64x64" if args.size == "512x512" else args.size
        args.batch_sizes, args.concurrency = "1,2", "1,4"
        args.iters, args.warmup_iters, args.duration_s, args.warmup_s = 2, 1, 3.0, 0.5
    (width, height), = parse_sizes(args.size)
    try:
        parse_model_mix(parse_models(args.models), args.mix)
    except ValueError as exc:  # a mix that does not fit the models (or comes without them)
        build_parser().error(str(exc))
    on_cuda = args.device.startswith("cuda")
    settings = app_settings(args.app_arg, args.device)
    service_config = config_of(settings, args.device)
    names = args.configs.split(",") if args.configs else (["fp32", "fp16", "fp16-cl", "fp16-cl-compile"] if on_cuda else ["fp32"])
    configs = make_configs(names)
    batch_sizes = sorted(set(parse_int_list(args.batch_sizes)) | {settings.max_batch_size})
    buckets = parse_int_list(args.compile_buckets)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    # 1. Nothing is measured on a machine without the device asked for.
    if on_cuda and not torch.cuda.is_available():
        print("no CUDA device visible: nothing measured (use --device cpu for a smoke run)", file=sys.stderr)
        return 2
    info = device_info(args.device)
    print(f"== {info}", flush=True)
    result: dict[str, Any] = {"device": info, "command": "python -m loadtest.gpu_benchmark " + " ".join(argv if argv is not None else sys.argv[1:]),
                              "model": args.model, "size": args.size, "steps": 1, "configs": names, "batch_sweep": {},
                              "app_settings": {k: settings.as_dict()[k] for k in ("max_batch_size", "batch_wait_timeout_s", "dtype",
                                                                                  "channels_last", "compile")},
                              "service_config": service_config, "models": args.models, "mix": args.mix}
    t_all = time.time()

    def save(series: dict[str, list[LevelSummary]] | None = None) -> None:
        """Write what is measured so far: a timeout or a crash later still leaves it on disk."""
        result["elapsed_s"] = time.time() - t_all
        report.write_json(out / "gpu_benchmark.json", result)
        (out / "gpu_benchmark.md").write_text(render_md(result, series or {}))

    # 2. The ceiling: direct pipeline calls per configuration and batch size.
    if not args.skip_sweep:
        m = Model(args.model, args.device, args.cache_dir)
        decoders = args.decoders.split(",") if args.decoders else []
        compile_mode = args.decoder_compile_mode or ("reduce-overhead" if on_cuda else "default")
        for cfg in configs:
            print(f"== configuration {cfg.name}", flush=True)
            t = time.time()
            sweep_buckets = buckets if cfg.compile else None
            sizes = [bs for bs in batch_sizes if not sweep_buckets or bs in sweep_buckets]
            unet_compile_s = m.apply(cfg, compile_mode, sizes, (width, height))
            result.setdefault("load_s", {})[cfg.name] = time.time() - t
            if unet_compile_s is not None:
                result.setdefault("unet_compile_s", {})[cfg.name] = unet_compile_s
                print(f"   [{cfg.name}] UNet compiled ({compile_mode}) for batches {sizes} in {unet_compile_s:.1f} s",
                      flush=True)
            # Per decoder (--decoders), or the configuration's own path. A compiled configuration
            # compiles its decoders too, as the `compile` setting does for a replica.
            for decoder in decoders:
                if cfg.compile and not decoder.endswith("-compiled"):
                    decoder += "-compiled"
                label = f"{cfg.name} {decoder}"
                print(f"== decoder {label}", flush=True)
                compile_s = m.use_decoder(decoder, args.tiny_decoder, args.tiny_decoder_revision, compile_mode, sizes,
                                          width, height)
                cost = result.setdefault("decoder_cost", {})[label] = m.decoder_cost
                print(f"   [{label}] {cost['decoder_params'] / 1e6:.2f}M decoder parameters, "
                      f"{cost['gflop_per_image']:.1f} GFLOP per {width}x{height} image", flush=True)
                if compile_s is not None:
                    result.setdefault("decoder_compile_s", {})[label] = compile_s
                    print(f"   [{label}] compiled ({compile_mode}) for batches {sizes} in {compile_s:.1f} s", flush=True)
                result["batch_sweep"][label] = batch_sweep(m, batch_sizes, args.iters, args.warmup_iters, width,
                                                           height, sweep_buckets, label)
                save()
            m.use_decoder(None, "", "", "", [], width, height)
            if not decoders:
                result["batch_sweep"][cfg.name] = batch_sweep(m, batch_sizes, args.iters, args.warmup_iters, width,
                                                               height, sweep_buckets)
                save()
        m.close()  # the service's replica loads its own copy
    sweep_rows = result["batch_sweep"]
    if args.skip_sweep and args.ceiling_from and Path(args.ceiling_from).is_file():
        sweep_rows = json.loads(Path(args.ceiling_from).read_text()).get("batch_sweep", {})
        result["ceiling_from"] = args.ceiling_from
    default_decoder = "full" if "full" in settings.loaded_decoders else settings.loaded_decoders[0]
    ceiling = ceiling_of(sweep_rows, service_config, settings.max_batch_size, default_decoder)
    result["ceiling"] = ceiling
    save()
    # 3. The service that ships, through HTTP, at each concurrency.
    series: dict[str, list[LevelSummary]] = {}
    if not args.skip_service:
        servers = run_servers(args, width, height, out)
        result["servers"] = servers
        if "baseline" in servers:
            series[BASELINE_NAME] = [LevelSummary(**lv) for lv in servers["baseline"]["levels"]]
        app_name = f"the service ({service_config}, max batch {settings.max_batch_size})"
        series[app_name] = [LevelSummary(**lv) for lv in servers["app"]["levels"]]
        result["figures"] = service_figures(series[app_name], ceiling)
        if args.models:
            result["figures_per_model"] = report.per_model_figures(servers["app"])
    # 4. Reports.
    save(series)
    if series:
        report.write_plot(out / "gpu_plot.png", series, title=f"{args.model} {args.size} 1 step on {info.get('gpu', args.device)}")
    print((out / "gpu_benchmark.md").read_text())
    print(f"wrote {out}/gpu_benchmark.json {out}/gpu_benchmark.md" + (f" {out}/gpu_plot.png" if series else ""))
    return 0


def _f(v: Any, nd: int = 1) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def render_md(r: dict[str, Any], series: dict[str, list[LevelSummary]]) -> str:
    d = r["device"]
    lines = [f"# GPU benchmark: {r['model']} {r['size']}, 1 step", "",
             f"- **device**: {d.get('gpu', d['device'])} ({d.get('gpu_mem_gib', '?')} GiB), CUDA {d.get('cuda')}, torch {d['torch']}",
             f"- **date**: {d['date_utc']}", f"- **command**: `{r['command']}`",
             f"- **the app's settings**: {r['app_settings']} (configuration `{r['service_config']}`)", ""]
    if r["batch_sweep"]:
        lines += ["## Batch sweep (direct pipeline calls: the ceiling)", "",
                  "| configuration | batch | images/s | p50 ms | p95 ms | peak MiB |", "|---|---:|---:|---:|---:|---:|"]
        for cfg, rows in r["batch_sweep"].items():
            for row in rows:
                if "error" in row:
                    lines.append(f"| {cfg} | {row['batch_size']} | {row['error']} | | | |")
                else:
                    lines.append(f"| {cfg} | {row['batch_size']} | {_f(row['images_s'], 2)} | {_f(row['latency_ms_p50'])} | "
                                 f"{_f(row['latency_ms_p95'])} | {_f(row['peak_mem_mib'], 0)} |")
    profiled = [(cfg, row) for cfg, rows in r["batch_sweep"].items() for row in rows if "profile_ms" in row]
    if profiled:
        lines += ["", "## Where the time goes (one call per row, device synchronised at each stage, ms)", "",
                  "| configuration | batch | text encoder | UNet | decode | other | total |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for cfg, row in profiled:
            prof = row["profile_ms"]
            lines.append(f"| {cfg} | {row['batch_size']} | " + " | ".join(
                _f(prof[k]) for k in ("text_encoder", "unet", "decode", "other", "total")) + " |")
    if r.get("decoder_cost"):
        lines += ["", "Decoder cost (torch FlopCounterMode, one image): " + ", ".join(
            f"{k} {v['decoder_params'] / 1e6:.2f}M parameters / {v['gflop_per_image']:.1f} GFLOP"
            for k, v in r["decoder_cost"].items())]
    if r.get("decoder_compile_s"):
        lines += ["", "Decoder compile time (every swept batch size, at warm-up): " + ", ".join(
            f"{k} {v:.1f} s" for k, v in r["decoder_compile_s"].items())]
    if r.get("unet_compile_s"):
        lines += ["", "UNet compile time (per batch bucket, at warm-up): " + ", ".join(
            f"{k} {v:.1f} s" for k, v in r["unet_compile_s"].items())]
    c = r.get("ceiling")
    lines += ["", "**Ceiling**: " + (f"{_f(c['images_s'], 2)} images/s ({c['config']}, direct calls of batch {c['batch_size']})"
                                     if c else "not measured (the app's configuration was not in the sweep)")]
    if series:
        lines += ["", "## The service (loadtest.app_server -> Ray Serve -> HTTP -> python -m loadtest run)", "",
                  report.markdown_table(series), "",
                  "| clients | images/s | of the ceiling | p50 ms | p95 ms | p99 ms | mean pipeline call |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for level, f in r["figures"].items():
            if level == "ceiling_img_s":
                continue
            frac = f["fraction_of_ceiling"]
            lines.append(f"| {level} | {_f(f['img_s'], 2)} | {_f(frac * 100 if frac is not None else None, 0)}% | "
                         f"{_f(f['p50_ms'])} | {_f(f['p95_ms'])} | {_f(f['p99_ms'])} | {_f(f['mean_call_size'], 2)} |")
        lines += ["", "Targets (H100, sd-turbo-random, 512x512): >= 90% of the ceiling at >= 32 clients; p95 < 400 ms at 16 clients."]
        if r.get("figures_per_model"):
            lines += ["", f"The service serves {r['models']}; the ceiling above is {r['model']}'s alone.", "",
                      report.per_model_markdown(r["figures_per_model"], r.get("mix")).rstrip()]
    app = r.get("servers", {}).get("app")
    if app:
        lines += ["", f"**Cold start** (app server process started -> `/ping` 200, Ray start, model load and warm-up "
                      f"included): {_f(app.get('ready_s'))} s"]
        replicas = app.get("replicas") or {}
        if replicas.get("replicas"):
            lines += ["", "Model replicas, read as the app stopped (after the load):", "",
                      "| replica | device | GPU ids | peak device memory MiB | allocated MiB |", "|---|---|---|---:|---:|"]
            for name, st in sorted(replicas["replicas"].items()):
                peak, alloc = st.get("memory_peak_bytes"), st.get("memory_allocated_bytes")
                lines.append(f"| {name} | {st.get('device')} | {st.get('gpu_ids')} | "
                             f"{_f(peak / 2**20 if peak is not None else None, 0)} | "
                             f"{_f(alloc / 2**20 if alloc is not None else None, 0)} |")
        elif replicas.get("error"):
            lines += ["", f"Model replicas' counters: not read ({replicas['error']})"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
