"""Image loading that survives one corrupt file in a long training run."""
import logging
from typing import Optional

from mmcv.transforms import LoadImageFromFile
from mmengine.logging import print_log

try:
    from mmpretrain.registry import TRANSFORMS
except ImportError:  # detection-only installs
    from mmcv.transforms import TRANSFORMS


@TRANSFORMS.register_module()
class LoadImageOrSkip(LoadImageFromFile):
    """``LoadImageFromFile`` that logs and skips an image it cannot read or decode.

    Returning None makes mmengine's dataset draw another sample (up to ``max_refetch`` times,
    then it raises), so one corrupt file does not end a long run; every skip is logged as a
    warning naming the file. Meant for training pipelines: at test time mmengine refuses a
    skipped sample, and the plain loader's error names the file.
    """

    def transform(self, results: dict) -> Optional[dict]:
        try:
            return super().transform(results)
        except Exception as err:  # unreadable file or undecodable bytes (AssertionError)
            print_log(
                f"skipping image {results.get('img_path')!r}: {err}",
                logger='current',
                level=logging.WARNING)
            return None
