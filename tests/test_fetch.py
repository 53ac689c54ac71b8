import functools
import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from data import datasets
from data.fetch import FetchError, fetch, main

FILES = {"a.csv": b"x,y\n1,2\n", "sub/b.txt": b"hello world\n" * 100}


def make_dataset(tmp_path: Path, files=FILES, base_url=None, name="toy") -> datasets.Dataset:
    manifest = tmp_path / f"{name}.tsv"
    manifest.write_text(
        "".join(f"{rel}\t{len(body)}\t{hashlib.sha256(body).hexdigest()}\n" for rel, body in files.items())
    )
    return datasets.Dataset(name, base_url, manifest_path=manifest)


def write_tree(root: Path, files=FILES) -> Path:
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    return root


def leftovers(dest: Path):
    return sorted(p.name for p in dest.iterdir() if p.name.startswith("."))


def test_copies_from_mirror_and_verifies(tmp_path):
    ds = make_dataset(tmp_path)
    mirror = write_tree(tmp_path / "mirror" / "toy").parent
    out = fetch("toy", tmp_path / "dest", mirror, dataset=ds, log=lambda m: None)
    assert out == tmp_path / "dest" / "toy"
    assert {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} == set(FILES)
    assert (out / "sub/b.txt").read_bytes() == FILES["sub/b.txt"]
    assert leftovers(tmp_path / "dest") == []


def test_checksum_mismatch_names_the_file_and_leaves_nothing(tmp_path):
    ds = make_dataset(tmp_path)
    mirror = write_tree(tmp_path / "mirror" / "toy").parent
    (mirror / "toy" / "sub" / "b.txt").write_bytes(b"tampered\n")
    with pytest.raises(FetchError, match=r"checksum mismatch for sub/b.txt"):
        fetch("toy", tmp_path / "dest", mirror, dataset=ds, log=lambda m: None)
    assert not (tmp_path / "dest" / "toy").exists()
    assert leftovers(tmp_path / "dest") == []


def test_missing_file_without_url_is_a_clear_error(tmp_path):
    ds = make_dataset(tmp_path)
    mirror = write_tree(tmp_path / "mirror" / "toy").parent
    (mirror / "toy" / "a.csv").unlink()
    with pytest.raises(FetchError, match=r"cannot fetch toy/a.csv: not in mirror .*; no public URL"):
        fetch("toy", tmp_path / "dest", mirror, dataset=ds, log=lambda m: None)
    assert not (tmp_path / "dest" / "toy").exists()


def test_an_existing_copy_is_kept_a_changed_file_never_overwritten_a_missing_one_fetched(tmp_path):
    ds = make_dataset(tmp_path)
    mirror = write_tree(tmp_path / "mirror" / "toy").parent
    out = fetch("toy", tmp_path / "dest", mirror, dataset=ds, log=lambda m: None)
    messages = []
    fetch("toy", tmp_path / "dest", mirror, dataset=ds, log=messages.append)
    assert any("present and verified" in m for m in messages)
    (out / "span-2").mkdir()
    (out / "span-2" / "a.csv").write_bytes(b"x,y\n7,7\n")  # the user's own data beside the book's
    (out / "a.csv").write_bytes(b"x,y\n1,3\n")  # an edited file: same size, other bytes
    with pytest.raises(FetchError) as info:
        fetch("toy", tmp_path / "dest", mirror, dataset=ds, log=lambda m: None)
    message = str(info.value)
    assert f"{out / 'a.csv'} differs" in message and "not overwritten" in message and "span-N" in message
    assert (out / "a.csv").read_bytes() == b"x,y\n1,3\n"  # untouched
    (out / "a.csv").unlink()
    (out / "sub" / "b.txt").unlink()
    messages.clear()
    fetch("toy", tmp_path / "dest", mirror, dataset=ds, log=messages.append)
    assert any("2 of 2 files missing" in m for m in messages)
    assert (out / "a.csv").read_bytes() == FILES["a.csv"] and (out / "sub" / "b.txt").read_bytes() == FILES["sub/b.txt"]
    assert (out / "span-2" / "a.csv").read_bytes() == b"x,y\n7,7\n"  # nothing of the user's lost
    assert leftovers(tmp_path / "dest") == []


@pytest.fixture()
def http_root(tmp_path):
    root = write_tree(tmp_path / "www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_downloads_over_http_when_no_mirror(tmp_path, http_root):
    _, url = http_root
    ds = make_dataset(tmp_path, base_url=url)
    messages = []
    out = fetch("toy", tmp_path / "dest", None, use_default_mirror=False, dataset=ds, log=messages.append)
    assert (out / "sub/b.txt").read_bytes() == FILES["sub/b.txt"]
    assert any("2/2 files" in m and "MB" in m for m in messages)  # progress in files and bytes


def test_http_404_and_bad_bytes_are_errors_naming_the_file(tmp_path, http_root):
    root, url = http_root
    (root / "sub" / "b.txt").unlink()
    ds = make_dataset(tmp_path, base_url=url)
    with pytest.raises(FetchError, match=r"cannot fetch toy/sub/b.txt: .*sub/b.txt: HTTP 404"):
        fetch("toy", tmp_path / "dest", None, use_default_mirror=False, dataset=ds, log=lambda m: None)
    write_tree(root)
    (root / "a.csv").write_bytes(b"different\n")
    with pytest.raises(FetchError, match=r"checksum mismatch for a.csv \(from http://127.0.0.1"):
        fetch("toy", tmp_path / "dest", None, use_default_mirror=False, dataset=ds, log=lambda m: None)
    assert not (tmp_path / "dest" / "toy").exists()
    assert leftovers(tmp_path / "dest") == []


def test_manifests_cover_the_four_datasets():
    sizes = {name: len(ds.files()) for name, ds in datasets.DATASETS.items()}
    assert sizes == {"titanic": 2, "cifar2": 12000, "covid": 1, "imdb": 2}
    assert datasets.get("imdb").files()["train.csv"].sha256 == (
        "a565f5d85bc5c1848bdb94561f0cbe3720c74c964956388adfe525208152cf41"
    )


def test_cli_reports_unknown_dataset(capsys):
    assert main(["nope"]) == 1
    assert "unknown dataset 'nope'" in capsys.readouterr().err


def test_real_titanic_files_verify(titanic_data):
    assert (titanic_data / "train.csv").stat().st_size == 49738
