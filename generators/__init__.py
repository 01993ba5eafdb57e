"""Generators of architecture graphs conditioned on task, device and budget.

Two generative models over a space's decision graph (:mod:`generators.diffusion`,
:mod:`generators.autoregressive`), trained with Lightning (:mod:`generators.training`),
steered at sampling time by any reward -- in archgen, the predictors' -- through
:mod:`generators.guidance`. Every sample decodes to a valid architecture.
"""

from .guidance import guided_sample
from .model import GENERATORS, Generator, GeneratorConfig

__all__ = ["GENERATORS", "Generator", "GeneratorConfig", "guided_sample"]
