from .das_gate import DASGate, das_hidden_channels

__all__ = ['DASGate', 'das_hidden_channels']
