"""The lesson side: what notebooks import (as ``import tlcourse as tl``).

Never imports ``tlcourse.course``.

- ``config``   fast mode, seeds, where files live (every notebook)
- ``errors``   the one error type
- ``imagenet`` the lecture's ``prepare_image`` and classifier, sample photos (01-02)
- ``data``     the provisioned flowers splits, the course's augmentation (02-05)
- ``train``    MobileNet blocks, unfreezing, differential learning rates, saving (04-05)
- ``stats``    accuracies with their intervals, paired comparisons (03-08)
- ``costs``    convolution costs, counted exactly (06)
- ``cam``      class activation maps: where a network looks (02, 05)
- ``ondevice`` a .tflite model run by LiteRT in a process without TensorFlow (08)
- ``plots``, ``widgets``, ``report``  figures, interactive views, headline numbers
"""
