"""TFD on a small TFD_48x48.mat written by the test with the real file's fields."""

import numpy as np
import pytest
import torch

from advnets.data import tfd
from advnets.data.mnist import MissingDataError
from fakes import N, write_mat


def test_roles_follow_each_folds_column_and_pixels_scale_to_unit_interval(tmp_path):
    tfd.prepare_tfd(write_mat(tmp_path / "TFD_48x48.mat"), tmp_path / "data" / "tfd")
    for fold in range(5):
        for role, code in tfd.ROLES.items():
            images = tfd.load_tfd(role, fold, tmp_path / "data")
            expected = [i for i in range(N) if (i + fold) % 4 == code]
            assert images.shape == (len(expected), 2304) and images.dtype == torch.float32
            assert torch.equal(images[:, 0], torch.tensor(expected, dtype=torch.float32) / 255)


def test_a_missing_file_says_how_to_obtain_it(tmp_path):
    with pytest.raises(tfd.TFDFileError, match="not publicly downloadable.*prepare_tfd"):
        tfd.prepare_tfd(tmp_path / "TFD_48x48.mat", tmp_path / "data" / "tfd")
    assert not (tmp_path / "data").exists()


def test_a_file_without_folds_is_refused_naming_the_field(tmp_path):
    with pytest.raises(tfd.TFDFileError, match="no field folds"):
        tfd.read_mat(write_mat(tmp_path / "TFD_48x48.mat", folds=None))


def test_images_of_the_wrong_size_are_refused(tmp_path):
    small = np.zeros((N, 32, 32), dtype=np.uint8)
    with pytest.raises(tfd.TFDFileError, match=r"uint8 \[N, 48, 48\]"):
        tfd.read_mat(write_mat(tmp_path / "TFD_48x48.mat", images=small))


@pytest.mark.parametrize("content", [b"not a mat file at all" * 10, b""])
def test_a_file_that_is_not_matlab_is_refused(tmp_path, content):
    path = tmp_path / "TFD_48x48.mat"
    path.write_bytes(content)
    with pytest.raises(tfd.TFDFileError, match="not readable as a MATLAB file"):
        tfd.read_mat(path)


def test_load_checks_its_arguments_and_asks_for_preparation(tmp_path):
    with pytest.raises(ValueError, match="role must be one of"):
        tfd.load_tfd("training", 0, tmp_path)
    with pytest.raises(ValueError, match="fold must be 0 to 4"):
        tfd.load_tfd("test", 5, tmp_path)
    with pytest.raises(MissingDataError, match="prepare TFD first"):
        tfd.load_tfd("test", 0, tmp_path)
