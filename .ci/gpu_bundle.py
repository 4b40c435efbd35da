"""Build .ci/gpu/: what a GPU machine without network needs to run .ci/gpu-check.

The machine's image has torch, transformers, peft, accelerate and tensorboard but not gymnasium,
Stable-Baselines3 or the default encoder's package, and at most 64 MiB travel with the working
tree. This writes the missing wheels (no dependencies) and the default encoder's weights in
float16 (about 45 MB; the config keeps float32, so they load as float32) to .ci/gpu/, which git
ignores. Run with the project's venv: ``make gpu-bundle``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import torch

from rlagent.encoders import load_encoder

ROOT = Path(__file__).resolve().parent / "gpu"
WHEELS = ("gymnasium==1.4.0", "stable-baselines3==2.9.2", "farama-notifications==0.0.6")


def main() -> None:
    """Write the wheels and the encoder to .ci/gpu/, replacing what was there."""
    if ROOT.exists():
        shutil.rmtree(ROOT)
    wheels = ROOT / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(wheels)]
        + list(WHEELS),
        check=True,
    )
    encoder = load_encoder("default")
    folder = ROOT / "encoder"
    encoder.model.to(torch.float16).save_pretrained(folder)
    encoder.tokenizer.save_pretrained(folder)
    config = (folder / "config.json").read_text()
    (folder / "config.json").write_text(config.replace('"float16"', '"float32"'))
    size = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file())
    print(f"wrote {ROOT} ({size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
