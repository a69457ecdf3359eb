"""A detection data sample for an image fed as it is (no resize, no padding)."""


def unscaled_det_sample(height: int, width: int):
    """An mmdet ``DetDataSample`` whose metainfo says: an ``height x width`` image, neither
    resized nor padded, batched alone at that size (what a detector's forward reads)."""
    from mmdet.structures import DetDataSample
    shape = (height, width)
    return DetDataSample(
        metainfo=dict(
            img_shape=shape,
            pad_shape=shape,
            ori_shape=shape,
            scale_factor=(1.0, 1.0),
            batch_input_shape=shape))
