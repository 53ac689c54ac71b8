import os

import pytest

from components.atomic_pusher import push_atomically
from core.layout import version_numbers


def saved_model_dir(tmp_path):
    model = tmp_path / "model"
    (model / "variables").mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"pb")
    (model / "variables" / "variables.index").write_bytes(b"idx")
    return model


def test_push_creates_a_new_complete_version_and_no_staging_left(tmp_path):
    model = saved_model_dir(tmp_path)
    base = tmp_path / "serving"
    first = push_atomically(str(model), str(base))
    assert push_atomically(str(model), str(base)) == first  # the same model is not pushed twice
    (model / "variables" / "variables.index").write_bytes(b"idx2")
    second = push_atomically(str(model), str(base))
    assert version_numbers(base) == sorted(int(os.path.basename(p)) for p in (first, second))
    assert int(os.path.basename(second)) > int(os.path.basename(first))  # same second still gives a new version
    assert (base / os.path.basename(first) / "variables" / "variables.index").read_bytes() == b"idx"
    assert (base / os.path.basename(second) / "variables" / "variables.index").read_bytes() == b"idx2"
    assert sorted(os.listdir(base)) == sorted(os.path.basename(p) for p in (first, second))


def test_failed_copy_leaves_no_version(tmp_path):
    base = tmp_path / "serving"
    with pytest.raises(FileNotFoundError):
        push_atomically(str(tmp_path / "does-not-exist"), str(base))
    assert os.listdir(base) == []


def test_version_is_past_a_future_dated_one(tmp_path):
    model = saved_model_dir(tmp_path)
    base = tmp_path / "serving"
    (base / "99999999999").mkdir(parents=True)
    assert os.path.basename(push_atomically(str(model), str(base))) == "100000000000"
