"""nbgrader and Jupyter configuration for Framework0 Academy.

nbgrader reads this file through ``nbgrader_config.py`` (``load_subconfig``), so stock
commands work from the repository root with no extra flags::

    nbgrader generate_assignment module1      # curriculum/ -> exercises/
    nbgrader autograde module1                # submitted/ -> autograded/ + gradebook.db
    nbgrader generate_feedback module1        # autograded/ -> feedback/
    nbgrader export                           # grades.csv

Hidden tests do not run in the learner's kernel: ``ScoreHiddenSuites`` runs each module's
suite from ``autograder/`` in a fresh trusted process and writes the scores into the grade
cells before nbgrader saves them (see ``academy/grading/steps.py``).
"""

from nbconvert.preprocessors import ClearMetadataPreprocessor
from nbgrader.preprocessors import (
    AssignLatePenalties,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    DeduplicateIds,
    IgnorePattern,
    IncludeHeaderFooter,
    InstantiateTests,
    LimitOutput,
    LockCells,
    OverwriteCells,
    OverwriteKernelspec,
    SaveAutoGrades,
    SaveCells,
)

from academy.grading.cellmetadata import CheckCellMetadataCompiled
from academy.grading.nofollow import protect_student_folders
from academy.grading.sanitize import GuardSubmission
from academy.grading.steps import (
    ClearReflectionAnswers,
    ExecuteReference,
    ExecuteWithinLimits,
    FlagUngradableWork,
    ScoreHiddenSuites,
    StartHiddenSuites,
)

c = get_config()  # noqa: F821 - provided by traitlets when this file is loaded

# nbgrader copies and chmods student folders following links; make it act on regular files only.
protect_student_folders()

c.CourseDirectory.course_id = "framework0-academy"
c.CourseDirectory.source_directory = "curriculum"
c.CourseDirectory.release_directory = "exercises"
c.CourseDirectory.solution_directory = "solutions"
# Data files beside the notebooks travel with them; caches never do.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".hypothesis"]

# Learner kernels: bounded time per cell, killed without the slow polite shutdown.
c.Execute.timeout = 60
c.Execute.interrupt_on_timeout = True
c.Execute.shutdown_kernel = "immediate"
c.ExecuteWithinLimits.timeout = 60
c.ExecuteWithinLimits.shutdown_kernel = "immediate"
c.ExecuteReference.timeout = 300  # solution notebooks may run benchmarks

c.GenerateAssignment.preprocessors = [
    ClearReflectionAnswers,
    IncludeHeaderFooter,
    InstantiateTests,
    LockCells,
    ClearSolutions,
    ClearOutput,
    CheckCellMetadataCompiled,
    ComputeChecksums,
    SaveCells,
    ClearHiddenTests,
    ClearMarkScheme,
    ComputeChecksums,
    CheckCellMetadataCompiled,
]

c.GenerateSolution.preprocessors = [
    IncludeHeaderFooter,
    LockCells,
    ClearOutput,
    ClearHiddenTests,
    ClearMarkScheme,
    ExecuteReference,
]

# nbgrader's sanitize steps, after GuardSubmission: copied or foreign cell metadata is repaired
# (and noted), and a notebook that cannot be graded fails alone with its reason, instead of
# ending the whole run (see academy/grading/sanitize.py).
c.Autograde.sanitize_preprocessors = [
    GuardSubmission,
    ClearOutput,
    DeduplicateIds,
    OverwriteKernelspec,
    OverwriteCells,
    CheckCellMetadataCompiled,
]

c.Autograde.autograde_preprocessors = [
    StartHiddenSuites,  # the hidden suite runs alongside the kernel; ScoreHiddenSuites waits
    ExecuteWithinLimits,
    IgnorePattern,
    ClearMetadataPreprocessor,
    LimitOutput,
    ScoreHiddenSuites,
    FlagUngradableWork,  # before the grades: once they are saved, the student is complete
    SaveAutoGrades,
    AssignLatePenalties,
    CheckCellMetadataCompiled,
]
