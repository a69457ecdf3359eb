"""Image loading that survives one corrupt file in a long training run."""
import logging
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log

try:
    from mmpretrain.registry import TRANSFORMS
except ImportError:  # detection-only installs
    from mmcv.transforms import TRANSFORMS


def is_unreadable_image(err: BaseException) -> bool:
    """Whether ``err`` is what mmcv's ``LoadImageFromFile`` raises for an image that cannot be
    read (``OSError``: missing, unreadable, or a format PIL cannot identify) or decoded (its
    ``AssertionError`` "failed to load image"). Anything else (a misconfigured file backend, a
    bad pipeline) is a real failure."""
    return isinstance(err, OSError) or (isinstance(err, AssertionError)
                                        and str(err).startswith('failed to load image'))


@TRANSFORMS.register_module()
class LoadImageOrSkip(LoadImageFromFile):
    """``LoadImageFromFile`` that logs and skips an image it cannot read or decode.

    Returning None makes mmengine's dataset draw another sample (up to ``max_refetch`` times,
    then it raises), so one corrupt file does not end a long run; every skip is logged as a
    warning naming the file. Any other error (see :func:`is_unreadable_image`) propagates.
    Meant for training pipelines: at test time mmengine refuses a skipped sample, and the plain
    loader's error names the file.
    """

    def transform(self, results: dict) -> Optional[dict]:
        try:
            return super().transform(results)
        except (OSError, AssertionError) as err:
            if not is_unreadable_image(err):
                raise
            print_log(
                f"skipping image {results.get('img_path')!r}: {err}",
                logger='current',
                level=logging.WARNING)
            return None
