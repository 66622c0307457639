"""emofer: facial emotion recognition over ONNX Runtime.

```python
from emofer import EmotionRecognizer
rec = EmotionRecognizer.from_pretrained()   # bundled model, works offline
faces = rec.predict("photo.jpg")            # list[Face]
```
"""

from __future__ import annotations

import logging

from ._version import __version__
from . import draw  # the module, which calling draws: emofer.draw(image, faces), emofer.draw.draw_text(...)
from .errors import (  # noqa: E402
    DetectorError,
    EmoferError,
    ImageReadError,
    ModelLoadError,
    OutputError,
    ParameterError,
    VideoError,
)
from .recognizer import EmotionRecognizer  # noqa: E402
from .results import Face  # noqa: E402

logging.getLogger("emofer").addHandler(logging.NullHandler())

__all__ = [
    "EmotionRecognizer",
    "Face",
    "draw",
    "EmoferError",
    "ModelLoadError",
    "ImageReadError",
    "DetectorError",
    "VideoError",
    "ParameterError",
    "OutputError",
    "__version__",
]
