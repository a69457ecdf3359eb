"""The sfd score on hand-made CAMs whose values are computed by hand."""
import numpy as np
import pytest

from mmdas.analysis import UndefinedScore, antilog_scale, sfd_score

R4 = np.array([[True, True, False, False]])  # a 1 x 4 image, the object on the left half


def s(cam: float) -> float:
    """The anti-log scaling by hand, base 10."""
    return (10**cam - 1) / 9


def test_antilog_scaling_keeps_the_ends_and_stretches_the_top():
    np.testing.assert_allclose(antilog_scale(np.array([0.0, 0.5, 1.0])), [0, 0.2402530733, 1])
    assert s(0.9) == pytest.approx(0.7714758169)


def test_all_mass_on_the_object_gives_1():
    assert sfd_score(np.array([[1.0, 0.7, 0, 0]]), R4) == 1.0


def test_all_mass_off_the_object_gives_0():
    assert sfd_score(np.array([[0, 0, 1.0, 0.6]]), R4) == 0.0


def test_uniform_attention_gives_the_object_share_of_the_image():
    assert sfd_score(np.ones((4, 6)), np.arange(24).reshape(4, 6) < 6) == pytest.approx(0.25)


def test_weak_attention_off_the_object_is_not_counted_against_it():
    # s(0.2) = 0.0648 < 0.5: the right half is not salient, B = R
    assert sfd_score(np.array([[1.0, 0.5, 0.2, 0.2]]), R4) == 1.0


def test_a_known_split_by_hand():
    cam = np.array([[1.0, 0.5, 1.0, 0.9]])
    # s = 1, 0.2403, 1, 0.7715; both right pixels salient (>= 0.5): B = the whole image
    assert sfd_score(cam, R4) == pytest.approx(
        (1 + 0.2402530733) / (1 + 0.2402530733 + 1 + 0.7714758169))
    # threshold 0.8: only the right pixel with s = 1 is salient
    assert sfd_score(
        cam, R4, threshold=0.8) == pytest.approx((1 + 0.2402530733) / (1 + 0.2402530733 + 1))
    # base 2 by hand: s = 1, 0.41421, 1, 0.86607
    assert sfd_score(
        cam, R4, base=2) == pytest.approx(
            (1 + (2**0.5 - 1)) / (1 + (2**0.5 - 1) + 1 + (2**0.9 - 1)))


@pytest.mark.parametrize('cam, region, error, match', [
    (np.ones((2, 3)), np.ones((3, 2), bool), ValueError, 'of one shape'),
    (np.ones(4), np.ones(4, bool), ValueError, 'H x W'),
    (np.ones((2, 2)), np.zeros((2, 2), bool), ValueError, 'region is empty'),
    (np.array([[np.nan, 0.5]]), np.array([[True, False]]), ValueError, 'NaN or infinite'),
    (np.array([[0.0, 0.0]]), np.array([[True, False]]), ValueError, 'all zero'),
    (np.array([[1.5, 0.0]]), np.array([[True, False]]), ValueError, r'must lie in \[0, 1\]'),
    (np.ones((1, 2)), np.array([[1, 0]]), TypeError, 'region must be a boolean mask'),
])
def test_bad_input_raises_a_named_error(cam, region, error, match):
    with pytest.raises(error, match=match) as raised:
        sfd_score(cam, region)
    # only an all-zero CAM is "undefined" (tools count it apart); the rest is bad input
    assert isinstance(raised.value, UndefinedScore) == (match == 'all zero')


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match='threshold must be in'):
        sfd_score(np.ones((1, 2)), np.array([[True, False]]), threshold=1.5)
    with pytest.raises(ValueError, match='base must be > 1'):
        sfd_score(np.ones((1, 2)), np.array([[True, False]]), base=1)
