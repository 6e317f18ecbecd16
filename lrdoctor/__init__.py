"""lrdoctor: read a training run's loss history and say what is wrong with the learning rate.

>>> import lrdoctor
>>> [d] = lrdoctor.analyze("sample_logs/nan_lr0.1.csv")        # doctest: +SKIP
>>> d.verdict, d.recommendation.suggested_lr                   # doctest: +SKIP
"""
from lrdoctor._version import __version__
from lrdoctor.diagnosis import Diagnosis, analyze, diagnose
from lrdoctor.errors import LrDoctorError
from lrdoctor.finding import Finding
from lrdoctor.history import History
from lrdoctor.many import analyze_many
from lrdoctor.monitor import Monitor
from lrdoctor.range_test import RangeTest, range_test
from lrdoctor.rules import Recommendation

__all__ = ["__version__", "analyze", "analyze_many", "diagnose", "Diagnosis", "Finding",
           "History", "LrDoctorError", "Monitor", "RangeTest", "Recommendation", "range_test"]
