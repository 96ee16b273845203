"""Image folders (``folder:PATH``): classes from sub-folders, every file decoded up front,
and each unreadable, oversized or empty input named in one line."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bnn_keras import data
from bnn_keras.errors import BnnError
from tests.image_files import corrupt_middle, write_folder


def test_image_folder(tmp_path):
    root = write_folder(tmp_path / "pets")
    ds = data.load(f"folder:{root}", batch_size=4, image_size=24)
    assert ds.class_names == ("cat", "dog", "eel") and ds.num_classes == 3
    assert ds.train_size == 9 and ds.test_size == 9 and ds.input_shape == (24, 24, 3)
    labels = np.concatenate([y.numpy() for _, y in ds.test])
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 3))
    for x, _ in ds.train:
        assert x.shape[1:] == (24, 24, 3) and np.all(np.isfinite(x.numpy()))
    a = np.concatenate([x.numpy() for x, _ in ds.test])
    b = np.concatenate([x.numpy() for x, _ in ds.test])
    np.testing.assert_array_equal(a, b)  # evaluation is deterministic


def test_image_folder_errors(tmp_path):
    with pytest.raises(BnnError, match="does not exist"):
        data.load(f"folder:{tmp_path / 'nothing'}")
    root = write_folder(tmp_path / "odd", per_class=1)
    (root / "val" / "eel" / "0.jpg").unlink()
    (root / "val" / "eel").rmdir()
    with pytest.raises(BnnError, match="same class folders"):
        data.load(f"folder:{root}")
    assert data.is_known(f"folder:{root}") and not data.is_known("folder:")


def test_image_folder_names_unreadable_files(tmp_path):
    import io

    root = write_folder(tmp_path / "pets")
    (root / "train" / "cat" / "notes.jpg").write_text("<html>not an image</html>")
    good = (root / "val" / "dog" / "1.png").read_bytes()
    (root / "val" / "dog" / "cut.png").write_bytes(good[: len(good) // 2])
    (root / "train" / "eel" / "empty.jpg").write_bytes(b"")
    with pytest.raises(BnnError) as info:
        data.load(f"folder:{root}", batch_size=4, image_size=24)
    message = str(info.value)
    assert "\n" not in message and "3 files" in message
    for name in ("notes.jpg", "cut.png", "empty.jpg"):
        assert name in message
    # a JPEG with bytes after its end marker (some cameras append data) is fine
    for bad in ("train/cat/notes.jpg", "val/dog/cut.png", "train/eel/empty.jpg"):
        (root / bad).unlink()
    buf = io.BytesIO()
    Image.fromarray(np.zeros((30, 30, 3), np.uint8)).save(buf, "JPEG")
    (root / "train" / "cat" / "tail.jpg").write_bytes(buf.getvalue() + b"SEFT trailer data")
    ds = data.load(f"folder:{root}", batch_size=4, image_size=24)
    assert ds.train_size == 10


def test_dataset_arrays(tmp_path):
    root = write_folder(tmp_path / "pets")
    ds = data.load(f"folder:{root}", batch_size=4, image_size=24)
    x, y = ds.arrays("test")
    assert x.dtype == np.float32 and x.shape == (9, 24, 24, 3)
    np.testing.assert_array_equal(y, np.repeat([0, 1, 2], 3))
    first, _ = ds.arrays("train", limit=5)
    assert first.shape == (5, 24, 24, 3)
    with pytest.raises(BnnError, match="split must be"):
        ds.arrays("validation")


def test_image_folder_decodes_every_image_up_front(tmp_path, capfd):
    root = write_folder(tmp_path / "pets")
    corrupt_middle(root / "train" / "cat" / "0.jpg")
    corrupt_middle(root / "val" / "dog" / "1.png")
    with pytest.raises(BnnError) as info:
        data.load(f"folder:{root}", batch_size=4, image_size=24)
    message = str(info.value)
    assert "2 files" in message and "0.jpg (does not decode)" in message
    assert "1.png (does not decode)" in message
    assert "Corrupt JPEG" not in capfd.readouterr().err  # libjpeg's lines kept quiet


def _png_claiming(width, height):
    """A PNG whose header says ``width`` x ``height`` greyscale pixels, with (almost) no
    pixel data: what a decompression bomb looks like before it is decoded."""
    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_image_folder_refuses_decompression_bombs(tmp_path, monkeypatch):
    from bnn_keras.data import folders

    root = write_folder(tmp_path / "pets")
    # a tiny PNG claiming 100000 x 100000 pixels: refused from its header, never decoded
    (root / "train" / "dog" / "bomb.png").write_bytes(_png_claiming(100000, 100000))
    monkeypatch.setattr(folders, "_undecodable",
                        lambda paths: pytest.fail("decoded") if any(b"bomb" in p for p in paths)
                        else set())
    with pytest.raises(BnnError, match=r"bomb.png \(decodes to over 67108864 pixels\)"):
        data.load(f"folder:{root}", batch_size=4, image_size=24)


def test_image_folder_refuses_empty_class_folders(tmp_path):
    root = write_folder(tmp_path / "pets")
    for image in (root / "val" / "eel").iterdir():
        image.unlink()
    with pytest.raises(BnnError, match=f"class folder {root / 'val' / 'eel'} holds no images"):
        data.load(f"folder:{root}", batch_size=4, image_size=24)


def test_image_folder_with_file_names_that_are_not_utf8(tmp_path):
    root = write_folder(tmp_path / "pets")
    cat = os.fsencode(root / "train" / "cat")
    os.rename(os.path.join(cat, b"0.jpg"), os.path.join(cat, b"caf\xe9.jpg"))
    ds = data.load(f"folder:{root}", batch_size=4, image_size=24)
    assert sum(len(y) for _, y in ds.train) == 9
    corrupt_middle(Path(os.fsdecode(os.path.join(cat, b"caf\xe9.jpg"))))
    with pytest.raises(BnnError, match=r"cat/caf\\xe9\.jpg \(does not decode\)"):
        data.load(f"folder:{root}", batch_size=4, image_size=24)
