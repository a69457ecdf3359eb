"""Hooks a test config imports (``custom_imports``) to watch a training run from inside its
processes: which images each rank trained on, and a deterministic interruption."""
import json
import os
import os.path as osp

from mmengine.dist import barrier, get_rank
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

#: ``<work dir suffix>:<iteration>``: every rank exits right after that iteration's checkpoint
#: in the stage whose work dir ends with the suffix (as if the job were killed there).
EXIT_AFTER = 'PROBE_EXIT_AFTER'


@HOOKS.register_module()
class ProbeHook(Hook):
    """Appends ``{"iter": i, "img_ids": [...]}`` per training iteration to
    ``<work_dir>/samples_rank<r>.jsonl``; exits the process group where ``PROBE_EXIT_AFTER``
    says. Runs after the checkpoint hook (lowest priority)."""

    priority = 'LOWEST'

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        ids = [sample.img_id for sample in data_batch['data_samples']]
        with open(osp.join(runner.work_dir, f'samples_rank{get_rank()}.jsonl'), 'a') as f:
            f.write(json.dumps(dict(iter=runner.iter + 1, img_ids=ids)) + '\n')
        where = os.environ.get(EXIT_AFTER)
        if where:
            suffix, at_iter = where.rsplit(':', 1)
            if runner.work_dir.rstrip('/').endswith(suffix) and runner.iter + 1 == int(at_iter):
                barrier()  # both ranks got here: the checkpoint of this iteration is written
                os._exit(3)
