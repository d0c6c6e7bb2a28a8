"""Weight decay by parameter shape (open_clip's rule), not by name."""

import torch
import torch.nn as nn

from medlib.config import ModelSpec
from medlib.models import load_model
from medlib.train.optim import param_groups


class _Named(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn_proj = nn.Parameter(torch.ones(4, 4))        # 2-D, "bn" in its name: decays
        self.ln_weight_matrix = nn.Parameter(torch.ones(4, 4))  # 2-D, "ln" in its name: decays
        self.pos_bias_table = nn.Parameter(torch.ones(3, 4))  # 2-D, "bias" in its name: decays
        self.gain = nn.Parameter(torch.ones(4))              # 1-D: no decay
        self.logit_scale = nn.Parameter(torch.ones([]))      # the logit scale: no decay


def test_decay_excludes_ndim_le_1_and_logit_scale_only():
    m = _Named()
    no_decay, decay = param_groups(m, 0.1)
    ids = lambda g: {id(p) for p in g["params"]}  # noqa: E731
    assert ids(decay) == {id(m.bn_proj), id(m.ln_weight_matrix), id(m.pos_bias_table)}
    assert ids(no_decay) == {id(m.gain), id(m.logit_scale)}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0


def test_clip_groups_follow_shape():
    clip = load_model(ModelSpec(name="tiny", arch="medclip-tiny")).model
    no_decay, decay = param_groups(clip, 0.1)
    assert all(p.ndim >= 2 for p in decay["params"]) and all(p.ndim <= 1 for p in no_decay["params"])
    assert sum(p.numel() for g in (no_decay, decay) for p in g["params"]) == sum(p.numel() for p in clip.parameters())
