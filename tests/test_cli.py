import os
import subprocess
import sys
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "vae_demo", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, **(env or {})})


def test_cli_sample_reconstruct_interpolate(tmp_path, examples):
    r = run("sample", "-n", "16", "--seed", "0", "-o", str(tmp_path / "grid.png"), "--device", "cpu")
    assert r.returncode == 0, r.stderr
    with Image.open(tmp_path / "grid.png") as g:
        assert g.size[0] > g.size[1] > 0
    r = run("reconstruct", str(examples[3]), "-o", str(tmp_path / "rec.png"))
    assert r.returncode == 0 and '"psnr"' in r.stdout and '"reconstruction_class": "3"' in r.stdout
    big = tmp_path / "big.png"  # the digit small in a corner of a large white page: framed by default, not with --no-frame
    page = Image.new("L", (600, 600), 255)
    page.paste(Image.eval(Image.open(examples[3]).convert("L"), lambda v: 255 - v).resize((112, 112)), (420, 40))
    page.save(big)
    framed, plain = (run("reconstruct", str(big), *flag, "-o", str(tmp_path / "b.png")) for flag in ((), ("--no-frame",)))
    assert '"reconstruction_class": "3"' in framed.stdout and '"reconstruction_class": "3"' not in plain.stdout
    r = run("interpolate", str(examples[3]), str(examples[4]), "--steps", "5", "-o", str(tmp_path / "anim.gif"))
    assert r.returncode == 0
    with Image.open(tmp_path / "anim.gif") as g:
        assert g.n_frames == 5 + 3


def test_cli_errors_are_one_line_not_a_traceback(tmp_path):
    r = run("reconstruct", str(ROOT / "README.md"), "-o", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "not an image" in r.stderr and "Traceback" not in r.stderr


def test_hf_hub_offline_is_honoured_and_fails_fast(tmp_path):
    t0 = time.monotonic()
    r = run("sample", "--model", "someone/vae", "-o", str(tmp_path / "x.png"), env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)})
    assert r.returncode == 2 and "offline" in r.stderr and "Traceback" not in r.stderr
    assert time.monotonic() - t0 < 30  # process start + torch import; no network retries


def test_cli_impute_bits_augment(tmp_path, examples):
    import json
    import zipfile

    r = run("impute", str(examples[7]), "--mask", "bottom half", "-n", "4", "-o", str(tmp_path / "filled.png"))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["n"] == 4 and len(info["reads_as"]) == 4 and sum(x["reads_as"] == "7" for x in info["reads_as"]) >= 3
    with Image.open(tmp_path / "filled.png") as row:
        assert row.width > 4.5 * row.height
    blank = tmp_path / "blank.png"
    Image.new("L", (28, 28), 0).save(blank)
    bits = [json.loads(run("bits", str(p), "--no-frame").stdout)["iwae"] for p in (blank, examples[8])]
    assert bits[0] < bits[1] / 2  # an empty page costs far less than a digit
    r = run("augment", "--per-class", "2", "-o", str(tmp_path / "d.zip"))
    assert r.returncode == 0, r.stderr
    with zipfile.ZipFile(tmp_path / "d.zip") as zf:
        assert len([n for n in zf.namelist() if n.endswith(".png")]) == 20 and "labels.csv" in zf.namelist()
    r = run("impute", str(examples[7]), "--mask", "nope", "-o", str(tmp_path / "x.png"))
    assert r.returncode == 2 and "mask must be one of" in r.stderr and "Traceback" not in r.stderr
