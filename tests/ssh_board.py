"""An SSH "board" for tests: a throw-away sshd on 127.0.0.1 and a stand-in for
lce_benchmark_model.

The board is this machine: sshd on a free port with a temporary host key, authorized_keys
and a generated client key. The stand-in checks ``--graph`` and prints the documented
output of TFLite's benchmark tool; with ``--enable_op_profiling=true`` also its op profile
(:data:`PROFILE`, laid out as TFLite's stats calculator prints it), for the ``tiny``
model's five ops. Test modules import the fixtures and mark themselves
:data:`REQUIRES_SSH`.
"""

import contextlib
import getpass
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import free_port

SSHD = shutil.which("sshd") or next(
    (p for p in ("/usr/sbin/sshd", "/usr/local/sbin/sshd") if os.access(p, os.X_OK)), None)
SFTP_SERVER = next((p for p in ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server",
                                "/usr/libexec/sftp-server", "/usr/lib/ssh/sftp-server")
                    if os.access(p, os.X_OK)), None)

REQUIRES_SSH = [pytest.mark.skipif(
    SSHD is None or shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
    reason="needs the OpenSSH server and client (apt-get install openssh-server "
           "openssh-client; .ci/run installs them)"),
    pytest.mark.xdist_group("deploy_ssh")]  # one sshd per test worker

STAND_IN = r"""#!/bin/sh
# Stand-in for lce_benchmark_model: checks --graph and prints the documented output.
graph=""; threads=1; xnnpack=false; profile=false
for arg in "$@"; do
  case "$arg" in
    --graph=*) graph="${arg#--graph=}" ;;
    --num_threads=*) threads="${arg#--num_threads=}" ;;
    --use_xnnpack=*) xnnpack="${arg#--use_xnnpack=}" ;;
    --enable_op_profiling=*) profile="${arg#--enable_op_profiling=}" ;;
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
[ "$profile" = true ] || exit 0
cat <<'PROFILE'
"""  # noqa: E501

#: the ``tiny`` model's ops as (node type, avg ms, TFLite's node name), in run order
PROFILED_NODES = [
    ("CONV_2D", 0.412, "[model/conv2d/Conv2D1]:0"),
    ("LceQuantize", 0.051, "[model/quant_conv2d/ste_sign_1/Sign_1;model/quant_c]:1"),
    ("LceBconv2d", 1.204, "[model/quant_conv2d/QuantConv2D;model/quant_conv2d/]:2"),
    ("MEAN", 0.030, "[model/global_average_pooling2d/Mean]:3"),
    ("FULLY_CONNECTED", 0.011, "[Identity]:4"),
]


def _field(value, width: int) -> str:
    """One field as TFLite's stats calculator writes it: a tab, right-aligned."""
    return "\t" + str(value).rjust(width)


def _title(title: str) -> str:
    return f"============================== {title} =============================="


def _node_table(title: str, nodes: list) -> list[str]:
    header = (_field("[node type]", 24) + _field("[first]", 9) + _field("[avg ms]", 9)
              + _field("[%]", 8) + _field("[cdf%]", 8) + _field("[mem KB]", 10)
              + _field("[times called]", 9) + "\t[Name]")
    total, cdf, lines = sum(ms for _, ms, _ in nodes), 0.0, [_title(title), header]
    for op_type, ms, name in nodes:
        cdf += 100 * ms / total
        lines.append(_field(op_type, 24) + _field(f"{ms * 1.1:.3f}", 9) + _field(f"{ms:.3f}", 9)
                     + _field(f"{100 * ms / total:.3f}", 7) + "%" + _field(f"{cdf:.3f}", 7)
                     + "%" + _field("0.000", 10) + _field(1, 9) + "\t" + name)
    return [*lines, ""]


def _type_table(nodes: list) -> list[str]:
    header = (_field("[Node type]", 24) + _field("[count]", 9) + _field("[avg ms]", 10)
              + _field("[avg %]", 11) + _field("[cdf %]", 11) + _field("[mem KB]", 10)
              + _field("[times called]", 10))
    total, cdf = sum(ms for _, ms, _ in nodes), 0.0
    lines = [f"Number of nodes executed: {len(nodes)}", _title("Summary by node type"), header]
    for op_type, ms, _ in sorted(nodes, key=lambda n: -n[1]):
        cdf += 100 * ms / total
        lines.append(_field(op_type, 24) + _field(1, 9) + _field(f"{ms:.3f}", 10)
                     + _field(f"{100 * ms / total:.3f}", 10) + "%" + _field(f"{cdf:.3f}", 10)
                     + "%" + _field("0.000", 10) + _field(1, 9))
    return [*lines, ""]


def profile_text(nodes: list = PROFILED_NODES) -> str:
    """What ``lce_benchmark_model --enable_op_profiling=true`` appends to its output:
    the initialization's profile, then the regular runs' (run order, top by time, summary
    by node type, totals)."""
    init = [("AllocateTensors", 1.356, "AllocateTensors/0")]
    total_us = round(1000 * sum(ms for _, ms, _ in nodes))
    return "\n".join([
        "INFO: Profiling Info for Benchmark Initialization:",
        *_node_table("Run Order", init), *_type_table(init),
        "Timings (microseconds): count=1 curr=1356", "Memory (bytes): count=0",
        "1 nodes observed", "", "",
        "INFO: Operator-wise Profiling Info for Regular Benchmark Runs:",
        *_node_table("Run Order", nodes),
        *_node_table("Top by Computation Time", sorted(nodes, key=lambda n: -n[1])),
        *_type_table(nodes),
        f"Timings (microseconds): count=50 first={total_us + 40} curr={total_us - 5} "
        f"min={total_us - 20} max={total_us + 80} avg={total_us} std=21",
        "Memory (bytes): count=0", f"{len(nodes)} nodes observed", "", ""])


STAND_IN += profile_text() + "PROFILE\n"


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
    port = free_port()
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




def stand_in(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tool = directory / "lce_benchmark_model"
    tool.write_text(STAND_IN)
    tool.chmod(0o755)
    return tool

