"""emofer: facial emotion recognition over ONNX Runtime.

```python
from emofer import EmotionRecognizer
rec = EmotionRecognizer.from_pretrained()   # bundled model, works offline
faces = rec.predict("photo.jpg")            # list[Face]
```
"""

from __future__ import annotations

import logging

from . import draw, errors  # draw: the module, which calling draws (emofer.draw(image, faces), emofer.draw.draw_text)
from ._version import __version__
from .errors import *  # noqa: F403  every exception class, listed once in errors.__all__
from .recognizer import EmotionRecognizer
from .results import Face

logging.getLogger("emofer").addHandler(logging.NullHandler())

__all__ = ["EmotionRecognizer", "Face", "draw", *errors.__all__, "__version__"]
