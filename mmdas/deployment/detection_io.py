"""The whole-detector ONNX file's inputs and outputs in NumPy and OpenCV: ``preprocess`` (what
mmdet's test pipeline and data preprocessor do to an image, as the file's metadata records them),
``paste_mask`` and ``paste_masks`` (mmdet's mask pasting), ``detect`` (both around an ONNX
Runtime session) and ``draw``, defined once in ``tools/deployment/onnx_infer.py``, the script
that travels with the file to a deployment machine (no torch, OpenMMLab or mmdas there). This
module loads that script by its path, so the exporter's check runs the same code.
"""
import importlib.util
import os.path as osp
from types import ModuleType

PACKAGE = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: Where the script is: in the installed package's tools (``mmdas/.mim``), or in a checkout.
CANDIDATES = (osp.join(PACKAGE, '.mim', 'tools', 'deployment', 'onnx_infer.py'),
              osp.join(osp.dirname(PACKAGE), 'tools', 'deployment', 'onnx_infer.py'))


def load_onnx_infer() -> ModuleType:
    """``tools/deployment/onnx_infer.py`` as a module."""
    path = next((p for p in CANDIDATES if osp.isfile(p)), None)
    if path is None:
        raise FileNotFoundError(f'tools/deployment/onnx_infer.py is in neither {CANDIDATES}: '
                                'reinstall mmdas (pip install -e .) or run from a checkout')
    spec = importlib.util.spec_from_file_location('mmdas_onnx_infer', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_script = load_onnx_infer()
preprocess = _script.preprocess
paste_mask = _script.paste_mask
paste_masks = _script.paste_masks
detect = _script.detect
draw = _script.draw
