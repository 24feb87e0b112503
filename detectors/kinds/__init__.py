"""The detectors the core runs, one module each with its alert kinds and words
(:class:`~detectors.detector.CoreDetector`); :data:`detectors.registry.DETECTORS` lists them."""
