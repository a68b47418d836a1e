import functools
import gzip
import http.server
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch

import advnets.data.mnist as data
from advnets.atomic import md5_of
from advnets.data.mnist import ChecksumError, DownloadError, load_mnist, prepare_mnist


def test_split_sizes(mnist_root):
    sizes = {split: load_mnist(split, mnist_root)[0].shape for split in data.SPLITS}
    assert sizes == {
        "train": (50_000, 784),
        "valid": (10_000, 784),
        "test": (10_000, 784),
    }


def test_splits_follow_file_order(mnist_root):
    assert load_mnist("train", mnist_root)[1][:5].tolist() == [5, 0, 4, 1, 9]
    assert load_mnist("test", mnist_root)[1][:5].tolist() == [7, 2, 1, 0, 4]


def test_pixels_are_float_in_unit_interval_with_mnist_mean(mnist_root):
    images, labels = load_mnist("train", mnist_root)
    assert images.dtype == torch.float32 and labels.dtype == torch.int64
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert images.mean().item() == pytest.approx(0.1307, abs=5e-4)


def test_valid_is_the_last_of_the_official_training_images(mnist_root, mnist_mirror):
    idx = gzip.decompress((mnist_mirror / "train-images-idx3-ubyte.gz").read_bytes())
    image_50000 = torch.frombuffer(bytearray(idx[16 + 50_000 * 784 :][:784]), dtype=torch.uint8)
    stored = torch.load(mnist_root / "mnist" / "valid.pt", weights_only=True)
    assert stored["images"].dtype == torch.uint8  # stored compactly
    assert torch.equal(stored["images"][0], image_50000)


def test_unknown_split_is_refused(mnist_root):
    with pytest.raises(ValueError, match="split must be one of"):
        load_mnist("training", mnist_root)


def _copy_mirror(src, dst):
    shutil.copytree(src, dst)
    for path in dst.iterdir():
        path.chmod(0o644)
    return dst


def _assert_nothing_left(parent):
    assert list(parent.iterdir()) == [], "a failed preparation left files behind"


def test_flipped_byte_in_content_is_refused_naming_the_file(tmp_path, mnist_mirror):
    mirror = _copy_mirror(mnist_mirror, tmp_path / "mirror")
    target = mirror / "t10k-labels-idx1-ubyte.gz"
    content = bytearray(gzip.decompress(target.read_bytes()))
    content[100] ^= 0xFF
    target.write_bytes(gzip.compress(bytes(content)))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ChecksumError) as info:
        prepare_mnist(out / "mnist", mirror, 50_000, 10_000)
    message = str(info.value)
    assert str(target) in message
    assert data.CONTENT_MD5["t10k-labels-idx1-ubyte"] in message
    assert "got " + data.hashlib.md5(content).hexdigest() in message
    _assert_nothing_left(out)


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_gzip_is_refused_naming_the_file(tmp_path, mnist_mirror, damage):
    mirror = _copy_mirror(mnist_mirror, tmp_path / "mirror")
    target = mirror / "train-labels-idx1-ubyte.gz"
    raw = bytearray(target.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
    else:
        raw = raw[: len(raw) // 2]
    target.write_bytes(bytes(raw))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ChecksumError, match=str(target)) as info:
        prepare_mnist(out / "mnist", mirror, 50_000, 10_000)
    assert data.CONTENT_MD5["train-labels-idx1-ubyte"] in str(info.value)
    _assert_nothing_left(out)


def test_failure_keeps_a_previous_good_output(tmp_path, mnist_mirror, monkeypatch):
    """A failure after some splits are written (the disk fills on the last) leaves the previous
    output as it was, with none of the new files, and no scratch folder beside it."""
    out = tmp_path / "mnist"
    out.mkdir()
    (out / "train.pt").write_text("previous")
    save, written = torch.save, []

    def disk_full_on_the_test_split(obj, path, *args, **kwargs):
        if Path(path).name == "test.pt":
            raise OSError(28, "No space left on device")
        save(obj, path, *args, **kwargs)
        written.append(Path(path).name)

    monkeypatch.setattr(torch, "save", disk_full_on_the_test_split)
    with pytest.raises(OSError, match="No space left"):
        prepare_mnist(out, mnist_mirror, 50_000, 10_000)
    assert written == ["train.pt", "valid.pt"]  # the failure came after real output was written
    assert [f.name for f in out.iterdir()] == ["train.pt"] and (out / "train.pt").read_text() == "previous"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["mnist"]


def test_environment_mirror_wins_over_params(monkeypatch, tmp_path, mnist_mirror):
    monkeypatch.setenv(data.MIRROR_ENV, str(mnist_mirror))
    assert data.resolve_mirror(str(tmp_path)) == mnist_mirror
    monkeypatch.delenv(data.MIRROR_ENV)
    assert data.resolve_mirror(str(tmp_path)) == tmp_path
    assert data.resolve_mirror(None) is None
    with pytest.raises(data.MirrorError, match="not a folder"):
        data.resolve_mirror(str(tmp_path / "absent"))


@pytest.fixture
def http_mirror(mnist_mirror):
    """The offline mirror served over HTTP on 127.0.0.1, standing in for the public hosts."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mnist_mirror))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _sources(urls_for, mirror, md5_for=lambda name, path: md5_of(path)):
    return [(urls_for(name), name, md5_for(name, mirror / name)) for name in sorted(
        p.name for p in mirror.glob("*.gz"))]


def test_download_tries_the_next_mirror_and_checks_the_gz_md5(
    monkeypatch, tmp_path, mnist_mirror, http_mirror
):
    sources = _sources(lambda name: [http_mirror + "missing/" + name, http_mirror + name], mnist_mirror)
    monkeypatch.setattr(data, "_public_sources", lambda: sources)
    prepare_mnist(tmp_path / "mnist", None, 50_000, 10_000)
    assert load_mnist("test", tmp_path)[1][:5].tolist() == [7, 2, 1, 0, 4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist"]


def test_download_with_wrong_gz_md5_is_refused(monkeypatch, tmp_path, mnist_mirror, http_mirror):
    sources = _sources(lambda name: [http_mirror + name], mnist_mirror, lambda name, path: "0" * 32)
    monkeypatch.setattr(data, "_public_sources", lambda: sources)
    with pytest.raises(ChecksumError, match=r"md5 expected 0{32}, got [0-9a-f]{32}"):
        prepare_mnist(tmp_path / "mnist", None, 50_000, 10_000)
    _assert_nothing_left(tmp_path)


def test_no_network_and_no_mirror_fails_fast_saying_how_to_set_the_mirror(
    monkeypatch, tmp_path, mnist_mirror
):
    unreachable = lambda name: [f"http://127.0.0.1:1/{name}"]  # noqa: E731 (closed port)
    monkeypatch.setattr(data, "_public_sources", lambda: _sources(unreachable, mnist_mirror))
    start = time.monotonic()
    with pytest.raises(DownloadError, match=data.MIRROR_ENV):
        prepare_mnist(tmp_path / "mnist", None, 50_000, 10_000)
    assert time.monotonic() - start < 10
    _assert_nothing_left(tmp_path)
