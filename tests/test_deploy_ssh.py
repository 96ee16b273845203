"""`bnn-keras bench --ssh` against a real sshd started on 127.0.0.1 (tests/ssh_board.py).

The "board" is this machine: a throw-away sshd, a stand-in for lce_benchmark_model that
prints the documented output, and deploy/lce_bench_runner.py on this Python.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests import ssh_board
from tests.cli_helpers import assert_one_line_error, run_main
from tests.helpers import free_port
from tests.ssh_board import stand_in

pytestmark = ssh_board.REQUIRES_SSH
board, board_without_sftp, tiny = ssh_board.board, ssh_board.board_without_sftp, ssh_board.tiny


def test_stand_in_binary_end_to_end(board, tiny, tmp_path, capsys):
    """Two models (one under a hostile name), two thread counts, a tool under a hostile
    path: every figure arrives, nothing is injected, the scratch directory is removed."""
    marker = f"bnn_injected_{uuid.uuid4().hex[:8]}"
    hostile = f"we ird $(cd; touch {marker}) ; touch {marker}; `touch {marker}` 'q\""
    tool = stand_in(tmp_path / f"board tools {hostile}")
    model_dir = tmp_path / hostile
    model_dir.mkdir()
    second = model_dir / f"a;b $(touch {marker})'.tflite"
    shutil.copy(tiny[1], second)
    code, out, err = run_main(["bench", tiny[1], second, *board["options"], "--binary", tool,
                               "--threads", "1,4", "--runs", "50", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [(r["model"], r["threads"]) for r in rows] == [
        (str(tiny[1]), 1), (str(tiny[1]), 4), (str(second), 1), (str(second), 4)]
    assert all(r["runner"] == "lce_benchmark_model" for r in rows)
    assert [r["avg_ms"] for r in rows] == [80.0, 20.0, 80.0, 20.0]
    assert rows[1]["min_ms"] == 19.0 and rows[1]["max_ms"] == 23.0 and rows[1]["runs"] == 50
    assert rows[0]["first_ms"] == 95.0 and rows[0]["peak_memory_mb"] == 9.5
    assert rows[0]["size_bytes"] == tiny[1].stat().st_size
    # the tool saw exactly our flags, with the copied model in a scratch directory
    calls = (tool.parent / "calls.log").read_text().splitlines()
    assert len(calls) == 4
    assert "--num_threads=4" in calls[1] and "--num_runs=50" in calls[1]
    assert "--use_indirect_bgemm=false" in calls[0]
    graph = Path(calls[0].split()[0].split("=", 1)[1])
    assert graph.name == "model-0.tflite" and graph.parent.name.startswith("bnn-keras.")
    assert not graph.parent.exists()  # cleaned up
    for where in (Path.home(), Path.cwd(), tmp_path, tool.parent, model_dir):
        assert not (where / marker).exists(), f"command injected: {where / marker}"
    host_key = (board["root"] / "host_key.pub").read_text().split()[1]
    assert host_key in board["known_hosts"].read_text()  # accepted and recorded

    # the same through the table and CSV
    code, out, err = run_main(["bench", tiny[1], *board["options"], "--binary", tool], capsys)
    assert code == 0, err
    assert "lce_benchmark_model" in out and "80.00" in out and "peak MB" in out
    code, out, err = run_main(["bench", tiny[1], *board["options"], "--binary", tool,
                               "--csv", "--threads", "2"], capsys)
    assert code == 0, err
    header, line = out.strip().splitlines()
    assert header.startswith("model,target,runner,threads") and ",40.0," in line


def test_python_runner_end_to_end(board, tiny, tmp_path, capsys):
    """No lce_benchmark_model on the board: auto falls back to deploy/lce_bench_runner.py
    on the board's Python with the LCE wheel; the float baseline runs with XNNPACK."""
    run = tmp_path / "runs" / "tiny"
    run.mkdir(parents=True)
    shutil.copy(tiny[0], run / "model.keras")
    shutil.copy(tiny[1], run / "model.tflite")
    (run / "metrics.json").write_text(json.dumps({"test_accuracy": 0.5}))
    plot = tmp_path / "latency vs accuracy.png"
    code, out, err = run_main(["bench", run / "model.tflite", *board["options"],
                               "--python", sys.executable, "--threads", "1,2", "--runs", "5",
                               "--warmup", "1", "--float-baseline", "--json", "--plot", plot],
                              capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert [r["threads"] for r in rows] == [1, 2]
    for r in rows:
        assert r["runner"] == "python-runner" and r["target"].endswith("@127.0.0.1")
        assert r["runs"] >= 5 and 0 < r["min_ms"] <= r["avg_ms"] <= r["max_ms"]
        assert r["peak_memory_mb"] > 0 and r["accuracy"] == 0.5
        assert r["float_avg_ms"] > 0 and r["speedup"] > 0 and r["float_size_bytes"] > 0
    assert plot.stat().st_size > 1000

    # --runner python with a Python that lacks LCE: a clear error
    code, _, err = run_main(["bench", tiny[1], *board["options"], "--runner", "python",
                             "--python", "/usr/bin/false"], capsys)
    assert_one_line_error(code, err, "no Python with larq_compute_engine")


def test_board_without_benchmark_tool(board, tiny, tmp_path, capsys):
    marker = f"bnn_injected_{uuid.uuid4().hex[:8]}"
    missing = tmp_path / f"nowhere $(touch {marker});touch {marker}" / "lce_benchmark_model"
    code, _, err = run_main(["bench", tiny[1], *board["options"], "--binary", missing,
                             "--runner", "binary"], capsys)
    assert_one_line_error(code, err, "has no benchmark tool")
    code, _, err = run_main(["bench", tiny[1], *board["options"],
                             "--python", f"python3; touch {marker}"], capsys)
    assert_one_line_error(code, err, "has no benchmark tool")
    assert "cannot import larq_compute_engine" in err
    for where in (Path.home(), Path.cwd(), tmp_path):
        assert not (where / marker).exists()
    # a tool that is there but fails: its ERROR line comes through
    tool = stand_in(tmp_path / "bin")
    (tool.parent / "lce_benchmark_model").write_text(
        "#!/bin/sh\necho 'ERROR: Failed to allocate tensors!'\nexit 1\n")
    code, _, err = run_main(["bench", tiny[1], *board["options"], "--binary", tool], capsys)
    assert_one_line_error(code, err, "lce_benchmark_model failed: Failed to allocate tensors!")
    # output cut short on the board
    (tool.parent / "lce_benchmark_model").write_text(
        "#!/bin/sh\necho 'INFO: STARTING!'\necho 'INFO: count=3 first=1 curr=1'\n")
    code, _, err = run_main(["bench", tiny[1], *board["options"], "--binary", tool], capsys)
    assert_one_line_error(code, err, "truncated")


def test_unreachable_host_is_bounded(tiny, tmp_path, capsys):
    key = tmp_path / "key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    common = ["--identity", key, "--known-hosts", tmp_path / "kh", "--connect-timeout", "2"]
    # nothing listens
    start = time.time()
    code, _, err = run_main(["bench", tiny[1], "--ssh", "nobody@127.0.0.1",
                             "--port", free_port(), *common], capsys)
    assert_one_line_error(code, err, "cannot reach nobody@127.0.0.1")
    # something listens but never speaks SSH: the connect timeout bounds the wait
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        start = time.time()
        code, _, err = run_main(["bench", tiny[1], "--ssh", "nobody@127.0.0.1", "--port",
                                 silent.getsockname()[1], *common], capsys)
    assert time.time() - start < 30
    assert code != 0 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "127.0.0.1" in err and ("timed out" in err or "cannot reach" in err)


def test_bad_files_fail_before_connecting(tiny, tmp_path, capsys):
    not_model = tmp_path / "notes.tflite"
    not_model.write_text("hello, not a model")
    # port 1 on 127.0.0.1: a connection attempt would give a different error
    args = ["--ssh", "me@127.0.0.1", "--port", "1", "--connect-timeout", "1"]
    code, _, err = run_main(["bench", not_model, *args], capsys)
    assert_one_line_error(code, err, "not a TFLite model")
    code, _, err = run_main(["bench", tmp_path / "missing.tflite", *args], capsys)
    assert_one_line_error(code, err, "not found")
    code, _, err = run_main(["bench", not_model, "--ssh", "-oProxyCommand=touch x"], capsys)
    assert_one_line_error(code, err, "not a TFLite model")
    for spec in ("-oProxyCommand=touch x", "-oProxyCommand=x@host", "user@host;ls"):
        code, _, err = run_main(["bench", tiny[1], "--ssh", spec], capsys)
        assert_one_line_error(code, err, "bad SSH target")
    code, _, err = run_main(["bench", tmp_path / "x.tflite", "--binary", "/x"], capsys)
    assert_one_line_error(code, err, "--binary needs --ssh")
    code, _, err = run_main(["bench", not_model, "--threads", "1,x"], capsys)
    assert_one_line_error(code, err, "--threads")


def test_copy_to_a_board_without_sftp(board_without_sftp, tiny, tmp_path, capsys):
    tool = stand_in(tmp_path / "bin")
    code, out, err = run_main(["bench", tiny[1], *board_without_sftp["options"], "--binary",
                               tool, "--json"], capsys)
    assert code == 0, err
    assert json.loads(out)["avg_ms"] == 80.0
    graph = (tool.parent / "calls.log").read_text().split()[0].split("=", 1)[1]
    assert graph.endswith("/model-0.tflite")


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its parent does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_timeout_kills_the_remote_command(board, tiny, tmp_path, capsys):
    """A benchmark that hangs on the board: after --timeout the remote tool and its
    children are gone, not left running there."""
    tool = tmp_path / "bin" / "lce_benchmark_model"
    tool.parent.mkdir()
    pids = tmp_path / "bin" / "pids"
    tool.write_text(f"#!/bin/sh\nsleep 300 &\necho $$ $! > {pids}\nwait\n")
    tool.chmod(0o755)
    start = time.time()
    try:
        code, _, err = run_main(["bench", tiny[1], *board["options"], "--binary", tool,
                                 "--timeout", "3"], capsys)
        assert_one_line_error(code, err, "timed out after 3 s")
        assert time.time() - start < 60
        running = [int(p) for p in pids.read_text().split()]
        deadline = time.time() + 15
        while any(map(_alive, running)) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(map(_alive, running)), "the remote benchmark is still running"
    finally:
        for pid in (pids.read_text().split() if pids.exists() else []):
            try:
                os.kill(int(pid), 9)
            except OSError:
                pass


def test_profile_on_the_board(board, tiny, tmp_path, capsys):
    """--profile runs the tool with --enable_op_profiling=true and prints its op profile
    per op type and per layer, two flatbuffers side by side, with MACs from the file."""
    tool = stand_in(tmp_path / "bin")
    second = tmp_path / "tiny_int8.tflite"
    shutil.copy(tiny[1], second)
    plot = tmp_path / "plots" / "profile.png"
    code, out, err = run_main(["bench", tiny[1], second, *board["options"], "--binary", tool,
                               "--profile", "--plot", plot], capsys)
    assert code == 0, err
    calls = (tool.parent / "calls.log").read_text().splitlines()
    assert len(calls) == 2 and all("--enable_op_profiling=true" in c for c in calls)
    assert f"A = {tiny[1]}, 1 thread(s): lce_benchmark_model" in out
    assert f"B = {second}, 1 thread(s)" in out and "profiled ops 1.708 ms" in out
    by_type = out.split("time per op type:")[1].split("time per layer")[0].splitlines()
    bconv = next(line.split() for line in by_type if line.startswith("LceBconv2d"))
    assert bconv == ["LceBconv2d", "1", "1.204", "70.5%", "0.15", "1", "1.204", "70.5%", "0.15"]
    total = next(line.split() for line in by_type if line.startswith("total"))
    assert total[:4] == ["total", "5", "1.708", "100.0%"]
    layers = out.split("time per layer")[1].splitlines()[3:]
    assert layers[0].split()[:4] == ["quant_conv2d", "LceBconv2d", "1.204", "0.15"]
    assert plot.stat().st_size > 1000 and os.listdir(plot.parent) == ["profile.png"]

    code, out, err = run_main(["bench", tiny[1], *board["options"], "--binary", tool,
                               "--profile", "--json"], capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["runs"][0]["avg_ms"] == 80.0
    (profile,) = data["profiles"]
    assert [n["op_type"] for n in profile["nodes"]] == [
        "CONV_2D", "LceQuantize", "LceBconv2d", "MEAN", "FULLY_CONNECTED"]
    conv = profile["nodes"][0]
    assert conv["avg_ms"] == 0.412 and conv["index"] == 0 and conv["layer"] == "conv2d"
    assert conv["macs"] == 16 * 16 * 8 * 3 * 3 * 3
    assert profile["nodes"][2]["macs"] == 16 * 16 * 8 * 3 * 3 * 8  # binary MACs
    assert profile["total_ms"] == 1.708 and profile["threads"] == 1

    # the board's Python runner cannot profile: op counts and MACs, and why
    code, out, err = run_main(["bench", tiny[1], *board["options"], "--python", sys.executable,
                               "--runs", "2", "--warmup", "1", "--profile"], capsys)
    assert code == 0, err
    assert "python-runner" in out and "no per-op times: the board has no lce_benchmark_model" in out
    assert "op counts and MACs per op type:" in out
