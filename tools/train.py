"""Train an mmdet, mmpretrain or mmseg config (with DAS backbones): the framework's own
``tools/train.py``, every flag with its meaning.

    python tools/train.py CONFIG [--work-dir DIR] [--amp] [--auto-scale-lr] [--resume [CKPT]]
                          [--cfg-options k=v ...] [--launcher {none,pytorch,slurm,mpi}]
                          [--local-rank N]  (the flags of the framework's tool, whatever they are)

Runs the installed framework's ``tools/train.py`` (from its ``.mim/tools``: mmdet's, or
mmpretrain's or mmseg's for a config of that ``default_scope``) after ``import mmdas``, which
registers the DAS modules; CONFIG comes first. It adds distributed runs on a CPU: under
``torchrun ... --launcher pytorch`` or slurm without CUDA the process group is gloo (mmengine
0.10.7's own launcher needs CUDA; ``mmdas.engine.distributed_on_cpu``).
"""
import runpy
import sys
from typing import List, Optional

import mmdas  # noqa: F401  (registers the DAS modules)
from mmdas.engine import distributed_on_cpu, framework_tool


def main(argv: Optional[List[str]] = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    config = argv[0] if argv and not argv[0].startswith('-') else None
    tool = framework_tool(config, 'train.py')
    saved, sys.argv = sys.argv, [tool] + argv
    try:
        with distributed_on_cpu():
            runpy.run_path(tool, run_name='__main__')
    finally:
        sys.argv = saved


if __name__ == '__main__':
    main()
