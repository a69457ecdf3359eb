"""Quiet runs: mmengine's full log goes to the work dir, the console shows progress bars.

mmengine's runner logs every hook table and the whole config to the console, mmdet's COCO
evaluation and pycocotools print their tables, and creating several runners in one process
warns about reused instances. A demo that runs six stages printed thousands of lines. Inside
:func:`quiet_console` all of that goes to a file; the console keeps :class:`ProgressBarHook`'s
bars and what the caller prints to :func:`console`.
"""
import contextlib
import logging
import sys
import warnings
from typing import IO, Iterator, Optional

from mmengine.registry import RUNNERS
from mmengine.runner import Runner

_console: Optional[IO] = None


def console() -> Optional[IO]:
    """The console saved by the innermost :func:`quiet_console`, or None outside one."""
    return _console


@contextlib.contextmanager
def quiet_console(log_path: str) -> Iterator[IO]:
    """Send stdout, stderr and Python warnings to ``log_path`` (appended); yield the console."""
    global _console
    saved = _console
    _console = sys.stdout if saved is None else saved
    with open(log_path, 'a') as log, contextlib.redirect_stdout(log), \
            contextlib.redirect_stderr(log), warnings.catch_warnings():
        warnings.simplefilter('default')
        previous_showwarning = warnings.showwarning
        warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: \
            log.write(warnings.formatwarning(message, category, filename, lineno, line))
        try:
            yield _console
        finally:
            warnings.showwarning = previous_showwarning
            _console = saved


@RUNNERS.register_module()
class QuietRunner(Runner):
    """mmengine's ``Runner`` whose console handler passes warnings and errors only; its log
    file (``<work_dir>/<timestamp>/<timestamp>.log``) keeps everything."""

    def build_logger(self, log_level='INFO', log_file=None, **kwargs):
        logger = super().build_logger(log_level, log_file, **kwargs)
        for handler in logger.handlers:
            if type(handler) is logging.StreamHandler:
                handler.setLevel(logging.WARNING)
        return logger


def quiet_cfg(cfg, title: str):
    """``cfg`` run by :class:`QuietRunner` with a :class:`ProgressBarHook` titled ``title``."""
    import copy
    cfg = copy.deepcopy(cfg)
    cfg.runner_type = 'QuietRunner'
    cfg.custom_hooks = list(cfg.get('custom_hooks')
                            or []) + [dict(type='ProgressBarHook', title=title)]
    return cfg
