"""mmdas: DAS attention gate for MMDetection and MMPretrain."""
import os.path as osp
from setuptools import find_packages, setup


def get_version() -> str:
    scope: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmdas', 'version.py')) as f:
        exec(f.read(), scope)
    return scope['__version__']


def parse_requirements(fname: str) -> list:
    path = osp.join(osp.dirname(__file__), 'requirements', fname)
    with open(path) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


setup(
    name='mmdas',
    version=get_version(),
    description='DAS: deformable attention gate for CNNs, for MMDetection and MMPretrain',
    long_description=open('README.md').read() if osp.exists('README.md') else '',
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests')),
    python_requires='>=3.8',
    install_requires=[
        'mmcv>=2.0.0,<2.2.0', 'mmengine>=0.10.0,<1.0.0', 'mmdet>=3.0.0,<3.4.0',
        'mmpretrain>=1.0.0,<1.3.0', 'pycocotools'
    ],
    extras_require={'tests': parse_requirements('tests.txt')},
    license='Apache License 2.0',
    zip_safe=False,
)
