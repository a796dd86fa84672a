"""The benchmark scripts keep running: ``bench_crypto.py --smoke`` end to end, tiny sizes.

Speed is not asserted (these machines are noisy); the script itself checks every
kernel's result against plaintext, and this test checks the records it writes.
"""

from __future__ import annotations

import json
import os
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


def test_bench_checkpoint_switches_durable_state_off_in_a_node(tmp_path: Path) -> None:
    """The benchmark's ephemeral nodes really keep checkpoints and inbox in memory only.

    (The demo pairs themselves take minutes; this checks the switch against today's
    node code, so a renamed hook cannot silently turn the comparison into durable vs.
    durable.)
    """
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import bench_checkpoint
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    (tmp_path / "sitecustomize.py").write_text(bench_checkpoint.HOOKS)
    probe = (
        "from pathlib import Path\n"
        "from lianmo.config import JobSpec, PartyConfig\n"
        "from lianmo.node import service\n"
        "assert service.JobCheckpoints(Path('x')).directory is None\n"
        "node = object.__new__(service.NodeService)\n"
        "node.config = PartyConfig.from_dict({'name': 'p', 'listen': '127.0.0.1:0', "
        "'state_dir': 's', 'tls': {'cert': 'c', 'key': 'k', 'ca': 'a'}}, base=Path('.'))\n"
        "class Spec:\n"
        "    job_id = 'j'\n"
        "    party_names = ('p', 'q')\n"
        "inbox = node._new_inbox(Spec, Path('x'))\n"
        "assert inbox._spool is None, inbox._spool\n"
        "print('ephemeral')\n"
    )

    def run_probe(variant: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(tmp_path), "LIANMO_BENCH_VARIANT": variant}
        return subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
        )

    proc = run_probe("ephemeral")
    assert proc.returncode == 0 and proc.stdout.strip() == "ephemeral", proc.stderr
    plain = run_probe("durable")  # timed, as shipped: the same probe fails
    assert plain.returncode != 0 and "AssertionError" in plain.stderr
