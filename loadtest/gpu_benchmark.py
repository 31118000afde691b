"""GPU benchmark: the optimisation matrix of the model path, with and without batching.

Standalone: needs torch, diffusers and serve_app.model (for the presets and the loader),
not ray and not locust.  On an H100:

    python -m loadtest.gpu_benchmark --model sd-turbo-random --device cuda --out results/gpu-h100

Smoke run on a CPU (what the test suite runs):

    python -m loadtest.gpu_benchmark --model tiny --device cpu --quick --out /tmp/gpu-smoke

What it measures, at one size (default 512x512) and one step:

Configurations other than fp32 call the service's ``SDTurboGenerator`` (uint8 quantisation on
the device); fp32, the naive baseline, uses diffusers' float32 PIL path.

1. **Batch sweep** per configuration (cumulative: ``fp32`` -> ``fp16`` -> ``fp16-cl``
   (channels-last UNet+VAE) -> ``fp16-cl-compile`` (torch.compile of the UNet); configurations
   are cumulative only where the next one adds to the last, e.g. ``fp16-cl,fp16`` reloads): for each
   batch size, ``--iters`` timed pipeline calls after warm-up; images/s (batch / mean call
   time), p50/p95 call latency, peak device memory (``torch.cuda.max_memory_allocated``).
2. **Concurrency sweep** per serving scenario: C closed-loop clients submit single-image
   requests to an in-process asyncio micro-batcher that mimics ``@serve.batch`` (a batch
   runs when it holds ``--max-batch-size`` requests or ``--batch-wait-ms`` after its first
   request arrived; the pipeline runs in a worker thread, encoding in a thread pool beside
   the next batch).  Scenarios:
     * ``baseline``: fp32, PNG, max batch 1 (the naive per-request server),
     * ``<best config>``: the most optimised configuration, JPEG, max batch 1,
     * ``<best config>+batching``: the same with max batch ``--max-batch-size``.
   Reported: images/s over the measured window, p50/p95/p99 latency, batch-size histogram,
   speed-up against the baseline at each concurrency.

**Decoders** (``--decoders full,full-compiled,tiny``): the batch sweep is repeated per VAE
decoder through the service's ``SDTurboGenerator`` (for every configuration, fp32 included):
``full`` (the model's VAE, eager), ``full-compiled`` (``torch.compile`` of the decoder at the
sweep's batch sizes, ``--decoder-compile-mode``, compile time recorded), ``tiny`` (TAESD from
``--tiny-decoder``, by default the random-weight ``taesd-random`` preset of its architecture) and
``tiny-compiled``. Each batch size also gets one profiled call (device synchronised at stage
boundaries) printed as a profile line: text encoder / UNet / decode / other ms.

With ``torch.compile`` the batcher pads each batch up to the next size in
``--compile-buckets`` (duplicated prompts, extra images dropped) so the UNet is compiled
for a handful of shapes, not every batch size; the padding work is included in the timings.

Writes ``gpu_benchmark.json``, ``gpu_benchmark.md`` and ``gpu_plot.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gc
import io
import json
import math
import platform
import random
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtest import report
from loadtest.stats import LevelSummary, percentile, summarise
from loadtest.workload import DEFAULT_PROMPTS, parse_int_list, parse_sizes

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

    def apply(self, cfg: Config) -> None:
        import torch

        from serve_app.model import load_pipeline

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
        if cfg.compile and not (cur and cur.compile):
            self.pipe.unet = torch.compile(self.pipe.unet)
        self.cfg = cfg
        self.decoder, self.decoder_set = None, None

    def use_decoder(self, decoder: str | None, tiny_source: str, tiny_revision: str, compile_mode: str,
                    batch_sizes: list[int], width: int, height: int) -> float | None:
        """Decode with ``decoder`` from now on (None: back to the pipeline's own path).

        A ``-compiled`` decoder is compiled here for exactly ``batch_sizes`` at this size;
        returns the seconds that took (None when nothing was compiled).
        """
        import torch

        from serve_app.model import load_tiny_decoder, resolve_tiny_decoder
        from serve_app.model.decoders import CompiledDecoder, DecoderSet, LatentDecoder

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
        from serve_app.model.profiling import decoder_cost

        scale = self.pipe.vae_scale_factor
        self.decoder_cost = decoder_cost(vae, height // scale, width // scale)
        measured: Any = LatentDecoder(name, vae)
        compile_s = None
        if compiled:
            # The replica's own compiled decoder, compiled for exactly the swept batch sizes.
            measured = CompiledDecoder(measured, compile_mode, batch_sizes, [(width, height)], self.pipe.vae_scale_factor)
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
        from serve_app.model import SDTurboGenerator

        return SDTurboGenerator(self.pipe, decoders=self.decoder_set)

    def specs(self, prompts: list[str], seeds: list[int], width: int, height: int) -> list:
        from serve_app.batching import GenerationSpec

        decoder = (self.decoder or "full").partition("-")[0]
        return [GenerationSpec(prompt=p, seed=s, width=width, height=height, decoder=decoder)
                for p, s in zip(prompts, seeds, strict=True)]

    def profile(self, prompts: list[str], seeds: list[int], width: int, height: int) -> dict[str, float]:
        """One generate() call through the service's generator, timed per stage (ms)."""
        from serve_app.model.profiling import profile_stages

        return profile_stages(self.service_generator(), self.specs(prompts, seeds, width, height))

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


def pad_to_bucket(n: int, buckets: list[int]) -> int:
    for b in sorted(buckets):
        if b >= n:
            return b
    return n


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


def encode(img: Any, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "PNG":
        img.save(buf, format="PNG")
    else:
        img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


async def serve_level(m: Model, concurrency: int, duration_s: float, max_batch: int, wait_s: float, fmt: str,
                      width: int, height: int, buckets: list[int] | None, encode_pool: ThreadPoolExecutor,
                      seed: int = 0) -> tuple[list[dict[str, Any]], float, float]:
    """C closed-loop clients against an in-process micro-batcher; returns (records, t0, t1)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    records: list[dict[str, Any]] = []
    stop = asyncio.Event()
    rng = random.Random(seed)

    async def batcher() -> None:
        while True:
            first = await queue.get()
            if first is None:
                return
            batch = [first]
            deadline = loop.time() + wait_s
            while len(batch) < max_batch:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    while len(batch) < max_batch and not queue.empty():
                        batch.append(queue.get_nowait())
                    break
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if item is None:
                    queue.put_nowait(None)
                    break
                batch.append(item)
            n = len(batch)
            run_n = pad_to_bucket(n, buckets) if buckets else n
            prompts = [b[0] for b in batch] + [batch[0][0]] * (run_n - n)
            seeds = [b[1] for b in batch] + [0] * (run_n - n)
            try:
                images = await asyncio.to_thread(m.generate, prompts, seeds, width, height)
            except Exception as exc:  # noqa: BLE001
                for b in batch:
                    b[2].set_exception(exc)
                continue
            for b, img in zip(batch, images[:n]):
                fut = loop.run_in_executor(encode_pool, encode, img, fmt)
                fut.add_done_callback(lambda f, b=b, n=n: b[2].set_result((n, f)))

    async def client() -> None:
        while not stop.is_set():
            fut = loop.create_future()
            t_wall, t0 = time.time(), time.perf_counter()
            queue.put_nowait((rng.choice(DEFAULT_PROMPTS), rng.randrange(2**32), fut))
            rec = {"start": t_wall, "status": 200, "ok": True, "images": 1, "width": width, "height": height}
            try:
                n, enc_fut = await fut
                data = enc_fut.result()
                rec.update(batch_size=n, bytes=len(data))
            except Exception as exc:  # noqa: BLE001
                rec.update(status=500, ok=False, error=f"{type(exc).__name__}: {str(exc)[:100]}")
            rec["latency_ms"] = (time.perf_counter() - t0) * 1000
            rec["concurrency"] = concurrency
            records.append(rec)

    b_task = asyncio.create_task(batcher())
    t_start = time.time()
    clients = [asyncio.create_task(client()) for _ in range(concurrency)]
    await asyncio.sleep(duration_s)
    stop.set()
    t_stop = time.time()
    await asyncio.gather(*clients)  # in-flight requests finish (recorded, outside the window if late)
    queue.put_nowait(None)
    await b_task
    return records, t_start, t_stop


def concurrency_sweep(m: Model, name: str, levels: list[int], duration_s: float, warmup_s: float, max_batch: int,
                      wait_ms: float, fmt: str, width: int, height: int, buckets: list[int] | None,
                      peak_mem: dict[str, dict[str, float | None]]) -> list[LevelSummary]:
    out = []
    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="encode") as pool:
        # warm-up at the largest batch this scenario can form (allocator, autotune, compile)
        warm = pad_to_bucket(max_batch, buckets) if buckets else max_batch
        m.generate(["warm-up"] * warm, list(range(warm)), width, height)
        for c in levels:
            m.reset_peak()
            recs, t0, t1 = asyncio.run(serve_level(m, c, duration_s, max_batch, wait_ms / 1000.0, fmt, width, height,
                                                   buckets, pool))
            s = summarise(recs, c, run_start=t0, run_end=t1, warmup_s=warmup_s)
            peak_mem.setdefault(name, {})[str(c)] = m.peak_mib()
            out.append(s)
            print(f"   [{name}] concurrency {c:>2}: {s.throughput_img_s:7.2f} img/s  p50 {s.latency_ms_p50:8.1f} ms"
                  f"  p95 {s.latency_ms_p95:8.1f} ms  batches {dict(s.batch_size_hist)}", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.gpu_benchmark", description="optimisation matrix on a GPU")
    p.add_argument("--model", default="sd-turbo-random", help="preset name or local diffusers directory")
    p.add_argument("--device", default="cuda")
    p.add_argument("--cache-dir", help="preset cache (default: the service's)")
    p.add_argument("--size", default="512x512")
    p.add_argument("--configs", help="comma list from fp32,fp16,fp16-cl,fp16-cl-compile (default: all on cuda; fp32,fp32-cl on cpu)")
    p.add_argument("--batch-sizes", default="1,2,4,8,12,16")
    p.add_argument("--concurrency", default="1,4,8,16,32")
    p.add_argument("--iters", type=int, default=10, help="timed calls per batch size")
    p.add_argument("--warmup-iters", type=int, default=2)
    p.add_argument("--duration-s", type=float, default=10.0, help="seconds per concurrency level")
    p.add_argument("--warmup-s", type=float, default=2.0)
    p.add_argument("--max-batch-size", type=int, default=16)
    p.add_argument("--batch-wait-ms", type=float, default=10.0)
    p.add_argument("--compile-buckets", default="1,2,4,8,16")
    p.add_argument("--skip-concurrency", action="store_true", help="batch sweep only")
    p.add_argument("--baseline-json", help="gpu_benchmark.json of an earlier run on the same GPU whose fp32 baseline "
                                            "the speed-ups are computed against (when this run has no fp32 config)")
    p.add_argument("--decoders", help="batch sweep per decoder through the service's generator: comma list from "
                                       "full,full-compiled,tiny,tiny-compiled (default: the configurations' own path)")
    p.add_argument("--tiny-decoder", default="taesd-random",
                   help="TAESD source for tiny decoders: taesd-random (preset), a directory, or a Hub id")
    p.add_argument("--tiny-decoder-revision", default="", help="Hub revision of --tiny-decoder (see the settings)")
    p.add_argument("--decoder-compile-mode", default=None,
                   help="torch.compile mode of -compiled decoders (default: reduce-overhead on cuda, default on cpu)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny sizes and counts (CPU tests)")
    p.add_argument("--out", default=f"results/gpu-{time.strftime('%Y%m%d-%H%M%S')}")
    args = p.parse_args(argv)

    if args.quick:
        args.size = "64x64" if args.size == "512x512" else args.size
        args.batch_sizes, args.concurrency = "1,2", "1,4"
        args.iters, args.warmup_iters, args.duration_s, args.warmup_s = 2, 1, 1.0, 0.0
        args.max_batch_size = min(args.max_batch_size, 4)
    (width, height), = parse_sizes(args.size)
    on_cuda = args.device.startswith("cuda")
    names = args.configs.split(",") if args.configs else (["fp32", "fp16", "fp16-cl", "fp16-cl-compile"] if on_cuda else ["fp32", "fp32-cl"])
    configs = make_configs(names)
    batch_sizes = parse_int_list(args.batch_sizes)
    levels = parse_int_list(args.concurrency)
    buckets = parse_int_list(args.compile_buckets)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    if on_cuda and not torch.cuda.is_available():
        print("no CUDA device visible: nothing measured (use --device cpu for a smoke run)", file=sys.stderr)
        return 2
    info = device_info(args.device)
    print(f"== {info}", flush=True)
    result: dict[str, Any] = {"device": info, "command": "python -m loadtest.gpu_benchmark " + " ".join(argv if argv is not None else sys.argv[1:]),
                              "model": args.model, "size": args.size, "steps": 1, "configs": names, "batch_sweep": {},
                              "concurrency_sweep": {}}
    m = Model(args.model, args.device, args.cache_dir)
    t_all = time.time()
    series: dict[str, list[LevelSummary]] = {}
    peak_mem: dict[str, dict[str, float | None]] = {}
    best_cfg = configs[-1]
    decoders = args.decoders.split(",") if args.decoders else []
    compile_mode = args.decoder_compile_mode or ("reduce-overhead" if on_cuda else "default")
    for cfg in configs:
        print(f"== configuration {cfg.name}", flush=True)
        t = time.time()
        m.apply(cfg)
        result.setdefault("load_s", {})[cfg.name] = time.time() - t
        sweep_buckets = buckets if cfg.compile else None
        for decoder in decoders:
            label = f"{cfg.name} {decoder}"
            print(f"== decoder {label}", flush=True)
            sizes = [bs for bs in batch_sizes if not sweep_buckets or bs in sweep_buckets]
            compile_s = m.use_decoder(decoder, args.tiny_decoder, args.tiny_decoder_revision, compile_mode, sizes,
                                      width, height)
            cost = result.setdefault("decoder_cost", {})[label] = m.decoder_cost
            print(f"   [{label}] {cost['decoder_params'] / 1e6:.2f}M decoder parameters, "
                  f"{cost['gflop_per_image']:.1f} GFLOP per {width}x{height} image", flush=True)
            if compile_s is not None:
                result.setdefault("decoder_compile_s", {})[label] = compile_s
                print(f"   [{label}] compiled ({compile_mode}) for batches {sizes} in {compile_s:.1f} s", flush=True)
            result["batch_sweep"][label] = batch_sweep(m, batch_sizes, args.iters, args.warmup_iters, width, height,
                                                       sweep_buckets, label)
        m.use_decoder(None, "", "", "", [], width, height)
        if not decoders:
            result["batch_sweep"][cfg.name] = batch_sweep(m, batch_sizes, args.iters, args.warmup_iters, width,
                                                           height, sweep_buckets)
        if args.skip_concurrency:
            continue
        cb = buckets if cfg.compile else None
        if cfg.name == "fp32":  # the naive baseline: fp32, PNG, one request at a time
            name = BASELINE_NAME
            series[name] = concurrency_sweep(m, name, levels, args.duration_s, args.warmup_s, 1, 0.0, "PNG", width, height,
                                             cb, peak_mem)
        if cfg is best_cfg:  # the most optimised configuration, without and with batching
            name = f"{cfg.name}, JPEG, no batching"
            series[name] = concurrency_sweep(m, name, levels, args.duration_s, args.warmup_s, 1, 0.0, "JPEG", width, height,
                                             cb, peak_mem)
            name = f"{cfg.name}, JPEG, batching <= {args.max_batch_size}"
            series[name] = concurrency_sweep(m, name, levels, args.duration_s, args.warmup_s, args.max_batch_size,
                                             args.batch_wait_ms, "JPEG", width, height, cb, peak_mem)
    result["concurrency_sweep"] = {k: [s.as_dict() for s in v] for k, v in series.items()}
    result["concurrency_peak_mem_mib"] = peak_mem
    base_by_c: dict[int, float] = {}
    if BASELINE_NAME in series:
        base_by_c = {s.concurrency: s.throughput_img_s for s in series[BASELINE_NAME]}
        result["baseline_source"] = "this run"
    elif args.baseline_json:
        prev = json.loads(Path(args.baseline_json).read_text())
        base_by_c = {lv["concurrency"]: lv["throughput_img_s"] for lv in prev["concurrency_sweep"].get(BASELINE_NAME, [])}
        result["baseline_source"] = f"{args.baseline_json} ({prev['device'].get('gpu')}, {prev['device']['date_utc']})"
    if base_by_c:
        result["speedup_vs_baseline"] = {k: {str(s.concurrency): s.throughput_img_s / base_by_c[s.concurrency]
                                             for s in v if base_by_c.get(s.concurrency)} for k, v in series.items()}
    result["elapsed_s"] = time.time() - t_all
    report.write_json(out / "gpu_benchmark.json", result)
    if series:
        report.write_plot(out / "gpu_plot.png", series, title=f"{args.model} {args.size} 1 step on {info.get('gpu', args.device)}")
    (out / "gpu_benchmark.md").write_text(render_md(result, series))
    print((out / "gpu_benchmark.md").read_text())
    print(f"wrote {out}/gpu_benchmark.json {out}/gpu_benchmark.md" + (f" {out}/gpu_plot.png" if series else ""))
    return 0


def _f(v: Any, nd: int = 1) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{nd}f}"


def render_md(r: dict[str, Any], series: dict[str, list[LevelSummary]]) -> str:
    d = r["device"]
    lines = [f"# GPU benchmark: {r['model']} {r['size']}, 1 step", "",
             f"- **device**: {d.get('gpu', d['device'])} ({d.get('gpu_mem_gib', '?')} GiB), CUDA {d.get('cuda')}, torch {d['torch']}",
             f"- **date**: {d['date_utc']}", f"- **command**: `{r['command']}`", "",
             "## Batch sweep (direct pipeline calls)", "",
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
    if series:
        lines += ["", "## Concurrency sweep (in-process micro-batcher, closed-loop clients)", "", report.markdown_table(series)]
        levels = [s.concurrency for s in next(iter(series.values()))]
        lines += ["Peak device memory (MiB) per scenario and concurrency:", "",
                  "| scenario | " + " | ".join(f"c={c}" for c in levels) + " |", "|---|" + "---:|" * len(levels)]
        for k, v in r.get("concurrency_peak_mem_mib", {}).items():
            lines.append(f"| {k} | " + " | ".join(_f(v.get(str(c)), 0) for c in levels) + " |")
        if r.get("speedup_vs_baseline"):
            lines += ["", f"Throughput against the naive baseline ({r.get('baseline_source')}):", "",
                      "| scenario | " + " | ".join(f"speed-up at c={c}" for c in levels) + " |", "|---|" + "---:|" * len(levels)]
            for k, v in r["speedup_vs_baseline"].items():
                lines.append(f"| {k} | " + " | ".join((f"{v[str(c)]:.2f}x" if str(c) in v else "n/a") for c in levels) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
