"""mmdas: DAS attention gate for MMDetection, MMPretrain and MMSegmentation.

The package carries its configs, tools and model index under ``mmdas/.mim`` (as mmyolo and the
other OpenMMLab projects do), so that ``_base_ = 'mmdas::das/...'`` and ``mim train mmdas`` work
after a plain ``pip install``: copied into the package for a wheel or sdist, symlinked for an
editable install.
"""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
MIM_FILES = ('configs', 'tools', 'model-index.yml')


def read_version_file() -> dict:
    scope: dict = {}
    with open(osp.join(ROOT, 'mmdas', 'version.py')) as f:
        exec(f.read(), scope)
    return scope


def framework_requirements(optional: bool) -> list:
    """``name>=low,<high`` for the frameworks of ``mmdas/version.py`` (the one place)."""
    return [
        f'{name}>={low},<{high}'
        for name, (_, low, high, needed) in read_version_file()['FRAMEWORKS'].items()
        if needed != optional
    ]


def framework_requirement(name: str) -> str:
    _, low, high, _ = read_version_file()['FRAMEWORKS'][name]
    return f'{name}>={low},<{high}'


def parse_requirements(fname: str) -> list:
    with open(osp.join(ROOT, 'requirements', fname)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def add_mim_extension() -> None:
    """Put configs, tools and the model index into ``mmdas/.mim``: symlinks for ``develop``
    (editable installs), copies when building a wheel or an sdist."""
    if 'develop' in sys.argv or 'editable_wheel' in sys.argv:
        mode = 'symlink'
    elif {'sdist', 'bdist_wheel', 'install', 'build'} & set(sys.argv):
        mode = 'copy'
    else:
        return
    mim_path = osp.join(ROOT, 'mmdas', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in MIM_FILES:
        src, dst = osp.join(ROOT, name), osp.join(mim_path, name)
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_path), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmdas',
        version=read_version_file()['__version__'],
        description='DAS: deformable attention gate for CNNs, for MMDetection, MMPretrain '
        'and MMSegmentation',
        long_description=open(osp.join(ROOT, 'README.md')).read(),
        long_description_content_type='text/markdown',
        keywords='computer vision, attention, object detection, image classification',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'projects*')),
        include_package_data=True,
        python_requires='>=3.8',
        install_requires=framework_requirements(optional=False) + ['pycocotools', 'matplotlib'],
        extras_require={
            'mmpretrain': [framework_requirement('mmpretrain')],
            'mmseg': [framework_requirement('mmsegmentation'), 'ftfy', 'regex'],
            'optional':
            framework_requirements(optional=True) + parse_requirements('optional.txt'),
            'tests':
            parse_requirements('tests.txt'),
            'all':
            framework_requirements(optional=True) + parse_requirements('optional.txt') +
            parse_requirements('tests.txt'),
        },
        classifiers=[
            'Development Status :: 4 - Beta',
            'License :: OSI Approved :: Apache Software License',
            'Operating System :: OS Independent',
            'Programming Language :: Python :: 3',
            'Programming Language :: Python :: 3.11',
        ],
        license='Apache License 2.0',
        zip_safe=False)
