"""Old home of `loopline.ml.feature_transform`. Models registered before the layout moved pickled
their classes under this path; this alias keeps them loading. Nothing else imports it."""

import sys

from loopline.ml import feature_transform

sys.modules[__name__] = feature_transform
