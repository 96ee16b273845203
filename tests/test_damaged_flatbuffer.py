"""Damaged and inconsistent flatbuffers are refused with one line, before LCE's
interpreter can crash on them (in this process or in ``bench`` and ``eval``)."""

import pytest

from bnn_keras import export, models
from bnn_keras.errors import BnnError


@pytest.fixture(scope="module")
def tiny_flatbuffer():
    """The two-block reactnet at 8x8, converted."""
    from tests.tiny_models import NAME

    return export.convert(models.create(NAME, "bf", 10, (8, 8, 3)))


def _repacked(flatbuffer: bytes, change) -> bytes:
    import flatbuffers

    from bnn_keras.export.flatbuffer import TFLITE_IDENTIFIER, _parse

    model = _parse(flatbuffer)
    change(model)
    builder = flatbuffers.Builder(len(flatbuffer) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)
    return bytes(builder.Output())


def _set(obj, name, value):
    setattr(obj, name, value)


@pytest.mark.parametrize("change,needle", [
    (lambda m: _set(m.subgraphs[0].tensors[3], "buffer", 10_000), "buffer index"),
    (lambda m: _set(m.subgraphs[0].operators[1], "inputs", [0, 9999]), "tensor index"),
    (lambda m: _set(m.subgraphs[0].operators[0], "opcodeIndex", 500), "operator code"),
    (lambda m: _set(m.subgraphs[0], "outputs", [-3]), "tensor index"),
    (lambda m: _set(m.buffers[2], "offset", 10**9) or _set(m.buffers[2], "size", 64),
     "outside the file"),
    (lambda m: _set(m, "subgraphs", []), "no subgraph"),
])
def test_inconsistent_flatbuffer_is_refused(tiny_flatbuffer, change, needle, tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(_repacked(tiny_flatbuffer, change))
    with pytest.raises(BnnError, match=needle):
        export.read_flatbuffer(bad)
    export.check_flatbuffer(tiny_flatbuffer)  # the real one passes


def test_damaged_flatbuffer_is_one_line_error_not_a_crash(tiny_flatbuffer, tmp_path):
    """A valid header over a damaged body used to crash LCE's interpreter (SIGSEGV) in
    bench and eval, leaving bench's temporary folder behind."""
    import os
    import subprocess

    from tests.cli_helpers import TINY_ENV, cli_argv

    garbage = tmp_path / "garbage.tflite"
    garbage.write_bytes(b"xxxxTFL3garbagegarbage")
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tiny_flatbuffer[:3000])
    for path in (garbage, cut):
        with pytest.raises(BnnError, match="corrupt TFLite flatbuffer"):
            export.read_flatbuffer(path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**os.environ, **TINY_ENV, "TMPDIR": str(scratch)}
    for args in (["bench", garbage, cut, "--runs", "1", "--warmup", "0"],
                 ["eval", cut, "--limit", "4"]):
        proc = subprocess.run(cli_argv(*args), env=env, capture_output=True, text=True,
                              timeout=300)
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
        assert proc.returncode == 1, proc.stderr[-1500:]
        assert len(lines) == 1 and "corrupt TFLite flatbuffer" in lines[0], proc.stderr[-1500:]
        assert "Traceback" not in proc.stderr
    assert list(scratch.iterdir()) == []  # no temporary folder left behind


def test_interpreter_crash_in_the_probe_is_one_line(tiny_flatbuffer, tmp_path, monkeypatch):
    """What the structural check cannot see still cannot crash this process: the model is
    first run once in a child process."""
    import importlib
    import sys

    local = importlib.import_module("bnn_keras.bench.local")

    path = tmp_path / "m.tflite"
    path.write_bytes(tiny_flatbuffer)
    local.probe_in_subprocess(path)  # a good model passes
    crash = "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"
    monkeypatch.setattr(local, "_probe_argv", lambda p: [sys.executable, "-c", crash])
    with pytest.raises(BnnError, match=r"LCE's interpreter crashed .*m\.tflite.*SIGSEGV"):
        local.probe_in_subprocess(path)
