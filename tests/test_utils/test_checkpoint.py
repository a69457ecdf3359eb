"""mmengine checkpoints save, load and resume under torch >= 2.6's weights_only default."""
import pickle

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmdas  # noqa: F401
from mmdas.models import DASGate


class GatedRegressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.gate = DASGate(4, deform_impl='torch')
        self.head = nn.Conv2d(4, 1, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.head(self.gate(torch.stack(inputs))).mean((1, 2, 3))
        if mode == 'loss':
            return dict(loss=((out - torch.stack(targets))**2).mean())
        return out


class Toy(torch.utils.data.Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return dict(inputs=torch.randn(4, 6, 6, generator=g), targets=torch.tensor(float(i % 2)))


def make_runner(work_dir, max_iters, resume=False):
    return Runner(
        model=GatedRegressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Toy(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1, momentum=0.9)),
        param_scheduler=dict(type='MultiStepLR', by_epoch=False, milestones=[3], end=100),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False)),
        resume=resume,
        randomness=dict(seed=0),
        experiment_name=f'ckpt_{max_iters}_{resume}')


def test_runner_checkpoint_resumes_with_the_same_state(tmp_path):
    assert torch.__version__ >= '2.6'  # the pinned torch defaults to weights_only=True
    first = make_runner(tmp_path, max_iters=2)
    first.train()
    saved = torch.load(tmp_path / 'iter_2.pth')  # default weights_only=True must accept it
    assert saved['meta']['iter'] == 2 and 'message_hub' in saved and 'optimizer' in saved

    second = make_runner(tmp_path, max_iters=4, resume=True)
    second.train()
    assert second.iter == 4
    resumed = torch.load(tmp_path / 'iter_4.pth')
    # The scheduler and optimizer state went on from iteration 2: lr dropped at iteration 3.
    assert resumed['param_schedulers'][0]['_global_step'] == 4
    assert resumed['optimizer']['param_groups'][0]['lr'] == pytest.approx(0.01)
    assert resumed['message_hub']['log_scalars']['train/loss'].data[0].size == 4


class Payload:

    def __reduce__(self):
        return (print, ('code ran while loading', ))


def test_other_pickled_globals_are_still_refused(tmp_path):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'state_dict': {}, 'x': Payload()}, f)
    with pytest.raises(pickle.UnpicklingError, match='Weights only load failed'):
        torch.load(path)


class GetattrPayload:

    def __init__(self, target, name):
        self.target, self.name = target, name

    def __reduce__(self):
        return (getattr, (self.target, self.name))


@pytest.mark.parametrize('target, name', [(dict, 'fromkeys'), ('HistoryBuffer', '__init__')])
def test_getattr_is_limited_to_history_buffer_methods(tmp_path, target, name):
    from mmengine.logging import HistoryBuffer
    target = HistoryBuffer if target == 'HistoryBuffer' else target
    path = tmp_path / 'getattr.pth'
    torch.save({'x': GetattrPayload(target, name)}, path)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr|Unsupported global'):
        torch.load(path)
