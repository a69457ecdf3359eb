from .synthetic_shapes import CLASSES as SHAPE_CLASSES
from .synthetic_shapes import (MIN_VISIBLE_FRACTION, MIN_VISIBLE_PIXELS, make_shapes_coco,
                               make_shapes_folder, make_shapes_seg, read_manifest, shape_mask_path,
                               shapes_cfg)
from .transforms import LoadImageOrSkip, is_unreadable_image

__all__ = [
    'SHAPE_CLASSES', 'MIN_VISIBLE_FRACTION', 'MIN_VISIBLE_PIXELS', 'read_manifest',
    'make_shapes_coco', 'make_shapes_folder', 'make_shapes_seg', 'shape_mask_path', 'shapes_cfg',
    'LoadImageOrSkip', 'is_unreadable_image'
]
