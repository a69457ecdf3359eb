from .synthetic_shapes import CLASSES as SHAPE_CLASSES
from .synthetic_shapes import make_shapes_coco, make_shapes_folder, make_shapes_seg, shape_mask_path
from .transforms import LoadImageOrSkip, is_unreadable_image

__all__ = [
    'SHAPE_CLASSES', 'make_shapes_coco', 'make_shapes_folder', 'make_shapes_seg', 'shape_mask_path',
    'LoadImageOrSkip', 'is_unreadable_image'
]
