"""Old home of `loopline.ml.torch_model`. Models registered before the layout moved pickled
their classes under this path; this alias keeps them loading. Nothing else imports it."""

import sys

from loopline.ml import torch_model

sys.modules[__name__] = torch_model
