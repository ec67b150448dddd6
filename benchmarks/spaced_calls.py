"""The `/reconstruct` handler as the server registers it, in one process without a server: called back to back, and
with idle time between calls as a server has (where Gradio's own work runs between a handler's calls), in float32 and
as served (vae_demo/device.py: bfloat16 where the CPU multiplies it natively and the model allows it).

    python benchmarks/spaced_calls.py [--model faces] [--calls 200] [--gaps-ms 0 10 20]

Prints a markdown table of median milliseconds per call (docs/PERFORMANCE.md, where the time goes).
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def measure(model: str, calls: int, gaps: list) -> dict:
    """In this process: the registered /reconstruct function on the model's first example, per gap -> median ms"""
    os.chdir(REPO)
    import app  # noqa: PLC0415
    from gradio.utils import get_upload_folder  # noqa: PLC0415

    demo = app.create_demo(models=[model], device="cpu")
    fn = next(d.fn for d in demo.fns.values() if d.api_name == "reconstruct")
    folder = Path(get_upload_folder()) / "spaced-calls"
    folder.mkdir(parents=True, exist_ok=True)
    example = demo.vae_service.registry.get(model).info.examples[0]
    upload = folder / "face.png"
    shutil.copy(example, upload)
    payload = {"path": str(upload), "meta": {"_type": "gradio.FileData"}, "orig_name": upload.name}
    for _ in range(20):
        fn(payload, model, True)
    out = {}
    for gap in gaps:
        times = []
        for _ in range(calls):
            time.sleep(gap / 1000)
            t = time.perf_counter()
            fn(payload, model, True)
            times.append(time.perf_counter() - t)
        out[gap] = 1000 * statistics.median(times)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="faces")
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--gaps-ms", type=float, nargs="+", default=[0, 10, 20])
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one measurement, its precision from the environment
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.model, args.calls, args.gaps_ms)))
        return 0
    rows = {}
    for precision in ("fp32", "auto"):
        env = {**os.environ, "VAE_DEMO_PRECISION": precision, "GRADIO_TEMP_DIR": tempfile.mkdtemp(prefix="spaced-")}
        line = subprocess.run([sys.executable, __file__, "--child", "--model", args.model, "--calls",
                               str(args.calls), "--gaps-ms", *map(str, args.gaps_ms)], env=env, capture_output=True,
                              text=True, check=True).stdout.strip().splitlines()[-1]
        rows[precision] = json.loads(line)
    from vae_demo.device import native_bf16_cpu  # noqa: PLC0415

    served = "as served (bf16)" if native_bf16_cpu() else "as served (float32: no native bf16 here)"
    print(f"| `/reconstruct` handler on `{args.model}`, median ms | " + " | ".join(
        "back to back" if g == 0 else f"{g:g} ms idle between calls" for g in args.gaps_ms) + " |")
    print("|---|" + "---|" * len(args.gaps_ms))
    for precision, label in (("fp32", "float32 (`VAE_DEMO_PRECISION=fp32`)"), ("auto", served)):
        print(f"| {label} | " + " | ".join(f"{v:.1f}" for v in rows[precision].values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
