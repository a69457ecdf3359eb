"""A console progress bar for an mmengine run, for use with a quiet console (:mod:`.quiet`)."""
import sys
from typing import Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS
from mmengine.utils import ProgressBar

from . import quiet


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """One mmengine ``ProgressBar`` per training run and per evaluation, titled.

    Shows what is being done, how many iterations (or batches) are done and the time left; the
    full log stays in the work dir. Writes to the console the quiet context saved (the real
    stdout while the run's own output goes to a file), else to ``sys.stdout``.
    """

    priority = 'VERY_LOW'

    def __init__(self, title: str = '') -> None:
        self.title = title
        self._bar: Optional[ProgressBar] = None
        self._pending = self._every = 0

    def _start(self, what: str, total: int) -> None:
        stream = quiet.console() or sys.stdout
        stream.write(f'{self.title}: {what}\n' if self.title else f'{what}\n')
        self._bar = ProgressBar(max(total, 0), file=stream)
        # Redrawn at most ~100 times: a log file or a CI console keeps every redraw.
        self._pending, self._every = 0, max(1, total // 100)

    def _step(self) -> None:
        if self._bar is None:
            return
        self._pending += 1
        done = self._bar.completed + self._pending >= self._bar.task_num
        if self._pending >= self._every or done:
            self._bar.update(self._pending)
            self._pending = 0

    def _finish(self) -> None:
        if self._bar is not None:
            if self._pending:
                self._bar.update(self._pending)
                self._pending = 0
            self._bar.file.write('\n')
            self._bar.file.flush()
            self._bar = None

    def before_train(self, runner) -> None:
        self._start(f'training, {runner.max_iters - runner.iter} iterations',
                    runner.max_iters - runner.iter)

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def before_val_epoch(self, runner) -> None:
        self._finish()  # a validation inside training interrupts the training bar
        self._start('validating', len(runner.val_dataloader))

    def after_val_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_val_epoch(self, runner, metrics=None) -> None:
        self._finish()

    def before_test_epoch(self, runner) -> None:
        self._start('testing', len(runner.test_dataloader))

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self._step()

    def after_test_epoch(self, runner, metrics=None) -> None:
        self._finish()

    def after_train(self, runner) -> None:
        self._finish()
