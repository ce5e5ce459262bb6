"""Labelled panels: titled columns, a caption per row, tiles shown large and crisp."""

from __future__ import annotations

import numpy as np
import pytest

from sphinx.rundir.panels import comparison_grid, error_map, labelled_grid, score_label, upscale_nearest


def solid(colour, side=8) -> np.ndarray:
    return np.full((side, side, 3), colour, dtype=np.uint8)


def box_of(picture: np.ndarray, colour) -> tuple[int, int, int, int]:
    rows, columns = np.nonzero((picture == np.array(colour, dtype=np.uint8)).all(axis=2))
    return rows.min(), rows.max() + 1, columns.min(), columns.max() + 1


def test_tiles_are_shown_at_the_tile_size_in_their_row_and_column():
    colours = [[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (255, 0, 255)]]
    picture = labelled_grid(
        [[solid(c) for c in row] for row in colours],
        column_titles=["a", "b"],
        row_labels=["first", "second"],
        tile_side=256,
    )
    boxes = [[box_of(picture, c) for c in row] for row in colours]
    for row in boxes:
        for top, bottom, left, right in row:
            assert (bottom - top, right - left) == (256, 256)
    assert boxes[0][0][2] < boxes[0][1][2] and boxes[0][0][0] == boxes[0][1][0]  # same row, left to right
    assert boxes[0][0][1] <= boxes[1][0][0]  # rows top to bottom
    assert boxes[0][0][0] > 10  # room for the column titles above the first row


def test_titles_and_labels_are_drawn_as_ink():
    tiles = [[solid((255, 255, 255))]]
    blank = labelled_grid(tiles, column_titles=[""], row_labels=[""], tile_side=64)
    labelled = labelled_grid(tiles, column_titles=["target"], row_labels=["astronaut  PSNR 20.00 dB"], tile_side=64)
    assert blank.shape == labelled.shape
    assert (labelled < 128).any() and not (blank < 128).any()


def test_nearest_upscaling_keeps_pixels_as_crisp_blocks():
    tile = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    big = upscale_nearest(tile, 256)
    assert big.shape == (256, 256, 3)
    assert np.array_equal(big[::64, ::64], tile)
    assert len(np.unique(big.reshape(-1, 3), axis=0)) == 16


def test_the_error_map_is_black_where_exact_and_bright_where_far():
    target = solid((100, 100, 100))
    far = solid((255, 255, 255))
    assert error_map(target, target).max() < 10
    assert error_map(far, target).mean() > 100


def test_the_observation_column_is_left_out_without_a_degradation():
    tiles = [solid((10, 20, 30))]
    without = comparison_grid(tiles, tiles, observations=None, row_labels=["a"], tile_side=64)
    with_observation = comparison_grid(tiles, tiles, observations=tiles, row_labels=["a"], tile_side=64)
    assert with_observation.shape[1] - without.shape[1] == 64 + 4  # one more tile and its gap
    assert without.shape[0] == with_observation.shape[0]


def test_a_row_label_names_the_image_and_its_scores():
    assert score_label("coffee", 21.456, 0.61234) == "coffee   PSNR 21.46 dB   SSIM 0.612"
    assert score_label("coffee", None, None) == "coffee"


def test_rows_and_labels_must_match():
    with pytest.raises(ValueError, match="one label per row"):
        labelled_grid([[solid(0)]], column_titles=["a"], row_labels=[], tile_side=32)


def test_a_row_label_shows_any_file_name_on_one_line_as_the_tables_write_it():
    # a newline and a byte that is not UTF-8 (0xE9, as os.listdir gives it) in the file names
    labels = [score_label("a\nb.png", 20.0, 0.5), score_label("caf\udce9.png", None, None)]
    assert labels == ["a\\nb.png   PSNR 20.00 dB   SSIM 0.500", "caf\\xe9.png"]
    tiles = [solid((10, 20, 30)), solid((30, 20, 10))]
    picture = comparison_grid(tiles, tiles, observations=None, row_labels=labels, tile_side=64)
    assert picture.shape[0] > 2 * 64


def test_a_title_or_label_that_would_break_its_line_is_drawn_on_one():
    tiles = [[solid((255, 255, 255))]]
    one = labelled_grid(tiles, column_titles=["target"], row_labels=["a\\nb"], tile_side=64)
    broken = labelled_grid(tiles, column_titles=["target"], row_labels=["a\nb"], tile_side=64)
    assert np.array_equal(one, broken)
