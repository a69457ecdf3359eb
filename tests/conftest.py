import pytest
from mmengine.registry import DefaultScope


@pytest.fixture
def scope():
    """``with scope('mmdet'):`` builds from that framework's registry, whatever ran before."""
    return DefaultScope.overwrite_default_scope
