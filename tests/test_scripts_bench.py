"""The benchmark scripts keep running: ``bench_crypto.py --smoke`` end to end, tiny sizes.

Speed is not asserted (these machines are noisy); the script itself checks every
kernel's result against plaintext, and this test checks the records it writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KERNELS = {"encrypt", "matvec", "mulmod_floor", "histogram", "decrypt_packed", "lr_epoch"}


def test_bench_crypto_smoke_writes_the_documented_records(
    shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_crypto.py"),
            "--smoke",
            "--data",
            str(shared_data),
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    records = json.loads(out.read_text())
    assert {r["kernel"] for r in records} == KERNELS
    for r in records:
        assert {"kernel", "size", "cores", "baseline_s", "lianmo_s", "speedup"} <= r.keys()
        assert r["lianmo_s"] > 0
        if r["kernel"] != "mulmod_floor":
            assert r["baseline_s"] > 0
            assert abs(r["speedup"] - r["baseline_s"] / r["lianmo_s"]) <= 0.01 * r["speedup"]
    assert {r["cores"] for r in records if r["kernel"] == "encrypt"} == {
        1,
        records[0]["machine"]["cores"],
    }
    variants = {r["variant"] for r in records if r["kernel"] == "encrypt"}
    assert variants == {"default", "crt", "short400_opt_in"}
    packed = [r for r in records if r["kernel"] == "decrypt_packed"]
    assert all(r["decryptions"] * 8 <= r["baseline_decryptions"] for r in packed)


def test_bench_secureboost_smoke_writes_the_documented_fields(
    shared_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "sb.json"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench_secureboost.py"),
            "--smoke",
            "--data",
            str(shared_data),
            "--output",
            str(tmp_path / "run"),
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=600,
    )
    result = json.loads(out.read_text())
    assert {"data", "auc", "ks", "pooled_auc", "wall_s", "phases", "phe"} <= result.keys()
    assert result["auc"] > 0.9 and result["pooled_auc"] > 0.9
    phases = result["phases"]
    assert set(phases) == {
        "encrypt_gradients_s",
        "build_histograms_s",
        "decrypt_s",
        "everything_else_s",
    }
    assert abs(sum(phases.values()) - result["wall_s"]) < 0.01
    assert all(v > 0 for k, v in phases.items() if k != "everything_else_s")
    counts = result["counts"]
    assert counts["encryptions"] == 2 * result["train_rows"]  # one per row per tree
    assert counts["decryptions"] * 10 < counts["candidates"]  # packed before decryption
    assert result["phe"]["speedup_crypto_phases"] > 0
