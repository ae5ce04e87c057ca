"""Training: the generic ``Trainer``, the language-model loop, its run directory and stop signals."""

from tinygpt.training.config import TrainConfig
from tinygpt.training.evaluation import bits_per_byte, evaluate_ids
from tinygpt.training.interrupts import StopSignals, TrainingInterrupted
from tinygpt.training.loop import LanguageModelTrainer
from tinygpt.training.run_directory import RunDirectory
from tinygpt.training.trainer import Trainer

__all__ = [
    "LanguageModelTrainer",
    "RunDirectory",
    "StopSignals",
    "TrainConfig",
    "Trainer",
    "TrainingInterrupted",
    "bits_per_byte",
    "evaluate_ids",
]
