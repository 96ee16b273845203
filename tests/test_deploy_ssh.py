"""`bnn-keras bench --ssh` against a real sshd started on 127.0.0.1 by this module.

The "board" is this machine: a throw-away sshd on a free port with a temporary host key,
authorized_keys and a generated client key; a stand-in for lce_benchmark_model that
prints the documented output; and deploy/lce_bench_runner.py on this Python.
"""

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.test_cli import assert_one_line_error, run_main

SSHD = shutil.which("sshd") or next(
    (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None)
SFTP_SERVER = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                                "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")
                    if os.access(p, os.X_OK)), None)

pytestmark = [pytest.mark.skipif(
    SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
    reason="needs the OpenSSH server and client (apt-get install openssh-server "
           "openssh-client; .ci/run installs them)"),
    pytest.mark.xdist_group("deploy_ssh")]  # one sshd per test worker

STAND_IN = r"""#!/bin/sh
# Stand-in for lce_benchmark_model: checks --graph and prints the documented output.
graph=""; threads=1; xnnpack=false
for arg in "$@"; do
  case "$arg" in
    --graph=*) graph="${arg#--graph=}" ;;
    --num_threads=*) threads="${arg#--num_threads=}" ;;
    --use_xnnpack=*) xnnpack="${arg#--use_xnnpack=}" ;;
  esac
done
printf '%s\n' "$*" >> "$(dirname "$0")/calls.log"
if [ ! -f "$graph" ]; then
  echo "ERROR: Could not open '$graph'."
  echo "ERROR: Benchmarking failed."
  exit 1
fi
avg=$((80000 / threads))
cat <<EOF
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [$threads]
INFO: Graph: [$graph]
INFO: #threads used for CPU inference: [$threads]
INFO: Loaded model $graph
INFO: The input model file size (MB): 3.19
INFO: Initialized session in 14.513ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=7 first=95000 curr=$avg min=$avg max=95000 avg=8.5e+04 std=5000

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=$avg curr=$avg min=$((avg - 1000)) max=$((avg + 3000)) avg=$avg std=600

INFO: Inference timings in us: Init: 14513, First inference: 95000, Warmup (avg): 8.5e+04, Inference (avg): $avg
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Peak memory footprint (MB): init=2.5 overall=9.5
EOF
"""  # noqa: E501


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def _sshd(root: Path, sftp: bool = True):
    """A running sshd on 127.0.0.1 (with the sftp subsystem or without, as some boards'
    dropbear or minimal OpenSSH are); yields the CLI options that reach it."""
    if os.geteuid() == 0 and not os.path.isdir("/run/sshd"):
        try:  # sshd as root insists on its privilege-separation directory
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        except OSError as err:
            pytest.skip(f"sshd needs /run/sshd, which cannot be created: {err}")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
                        "-f", str(root / name)], check=True)
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    port = _free_port()
    config = root / "sshd_config"
    lines = [f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {root / 'host_key'}",
             f"PidFile {root / 'sshd.pid'}", f"AuthorizedKeysFile {root / 'authorized_keys'}",
             "PubkeyAuthentication yes", "PasswordAuthentication no",
             "KbdInteractiveAuthentication no", "UsePAM no", "StrictModes no",
             "PermitRootLogin prohibit-password", "MaxStartups 50"]
    if sftp and SFTP_SERVER:
        lines.append(f"Subsystem sftp {SFTP_SERVER}")
    config.write_text("\n".join(lines) + "\n")
    log = open(root / "sshd.log", "w")
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log,
                            stderr=subprocess.STDOUT)
    known_hosts = root / "known_hosts"
    options = ["--ssh", f"{getpass.getuser()}@127.0.0.1", "--port", str(port),
               "--identity", str(root / "client_key"), "--known-hosts", str(known_hosts),
               "--connect-timeout", "5"]
    try:
        deadline = time.time() + 20
        while True:
            probe = subprocess.run(
                ["ssh", "-p", str(port), "-i", str(root / "client_key"), "-o", "BatchMode=yes",
                 "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                 "-o", "LogLevel=ERROR", "--", f"{getpass.getuser()}@127.0.0.1", "true"],
                stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
            if probe.returncode == 0:
                break
            if proc.poll() is not None or time.time() > deadline:
                log.flush()
                pytest.fail(f"sshd did not come up: {(root / 'sshd.log').read_text()[-800:]}"
                            f"{probe.stderr.decode()[-400:]}")
            time.sleep(0.2)
        yield {"options": options, "root": root, "known_hosts": known_hosts}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A running sshd; yields the CLI options that reach it."""
    with _sshd(tmp_path_factory.mktemp("sshd")) as options:
        yield options


@pytest.fixture(scope="module")
def board_without_sftp(tmp_path_factory):
    """A running sshd with no sftp subsystem (scp's default protocol since OpenSSH 9.0)."""
    with _sshd(tmp_path_factory.mktemp("sshd-nosftp"), sftp=False) as options:
        yield options


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 3-layer larq model (.keras) and its LCE flatbuffer (.tflite)."""
    import larq as lq
    import tf_keras as keras

    from bnn_keras.export import convert

    root = tmp_path_factory.mktemp("tiny")
    x = keras.Input((16, 16, 3))
    y = keras.layers.Conv2D(8, 3, padding="same")(x)
    y = lq.layers.QuantConv2D(8, 3, padding="same", pad_values=1.0, input_quantizer="ste_sign",
                              kernel_quantizer="ste_sign", kernel_constraint="weight_clip")(y)
    y = keras.layers.Dense(4)(keras.layers.GlobalAveragePooling2D()(y))
    model = keras.Model(x, y)
    model.save(root / "tiny.keras")
    (root / "tiny.tflite").write_bytes(convert(model))
    return root / "tiny.keras", root / "tiny.tflite"




def _stand_in(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / "lce_benchmark_model"
    tool.write_text(STAND_IN)
    tool.chmod(0o755)
    return tool


def test_stand_in_binary_end_to_end(board, tiny, tmp_path, capsys):
    """Two models (one under a hostile name), two thread counts, a tool under a hostile
    path: every figure arrives, nothing is injected, the scratch directory is removed."""
    marker = f"bnn_injected_{uuid.uuid4().hex[:8]}"
    hostile = f"we ird $(cd; touch {marker}) ; touch {marker}; `touch {marker}` 'q\""
    tool = _stand_in(tmp_path / f"board tools {hostile}")
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
    tool = _stand_in(tmp_path / "bin")
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
                             "--port", _free_port(), *common], capsys)
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
    tool = _stand_in(tmp_path / "bin")
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
