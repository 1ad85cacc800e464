"""Auto-graded labs: the format, the learner's checker and the instructor's grader (``mlsys lab``).

A lab is a notebook in nbgrader's cell format (see :mod:`.notebook`) in the repository's
``labs/`` folder, installed as ``mlsys/grading/builtin_labs``. :func:`checker` gives learners
instant feedback inside the notebook; :mod:`.runner` grades one submission in its own kernel
behind the :mod:`.guard`; :mod:`.batch` grades a folder of submissions into a gradebook.
"""

from .interactive import checker

__all__ = ["checker"]
