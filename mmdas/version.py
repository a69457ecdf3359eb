__version__ = '0.5.0'

#: The one place the supported framework versions are written: ``[low, high)`` per package.
#: ``import mmdas`` checks them (ImportError naming the range) and ``setup.py`` turns them into
#: ``install_requires``; ``requirements/`` pins the tested versions inside them.
FRAMEWORKS = {
    # distribution: (module, lowest supported, first unsupported, needed)
    # torch: the version the stack is tested with (requirements/build.txt) is the floor; it also
    # makes torch.load's weights_only=True default (2.6) and torch.onnx.ops (2.8) certain.
    'torch': ('torch', '2.14.0', '3.0.0', True),
    'mmcv': ('mmcv', '2.0.0', '2.2.0', True),
    'mmengine': ('mmengine', '0.10.0', '1.0.0', True),
    'mmdet': ('mmdet', '3.0.0', '3.4.0', True),
    'mmpretrain': ('mmpretrain', '1.0.0', '1.3.0', False),
    'mmsegmentation': ('mmseg', '1.0.0', '1.3.0', False),
}
