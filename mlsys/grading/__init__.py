"""Auto-graded labs: the format, the learner's checker and the instructor's grader (``mlsys lab``).

A lab is a notebook in nbgrader's cell format (see :mod:`.notebook`) in the repository's
``labs/`` folder, installed as ``mlsys/grading/builtin_labs``. :func:`checker` gives learners
instant feedback inside the notebook. To grade, :mod:`.runner` runs a submission's cells in a
kernel (:mod:`.kernel`) inside an operating-system sandbox (:mod:`.sandbox`, :mod:`.jail`) and
its tests in the grader's own process, calling the learner's functions with plain data
(:mod:`.session`, :mod:`.channel`, :mod:`.wire`); :mod:`.analysis` reads the code for reference
implementations and patching; :mod:`.batch` grades a folder into a :mod:`.gradebook`.
``labs/README.md`` is the guide to the format and the trust model.
"""

from .interactive import checker

__all__ = ["checker"]
