"""Task plugins: one module per task, looked up by the config's `task`.

A task module defines a `Task` subclass (see `experiments.tasks.base`) and
a module-level `TASK` instance. Add a line to `TASK_MODULES` to plug in a
new task; modules are imported only when a run needs them.
"""

import importlib

from experiments.errors import unknown_name_error

TASK_MODULES = {
    "image_classification": "experiments.tasks.image_classification",
    "text_classification": "experiments.tasks.text_classification",
    "translation": "experiments.tasks.translation",
    "image_captioning": "experiments.tasks.captioning",
}


def get_task(name):
    """The `Task` instance of the task plugin `name`.

    Raises:
        UserError: unknown task name (close matches listed).
    """
    if name not in TASK_MODULES:
        raise unknown_name_error(
            "task", name, TASK_MODULES, f"Known tasks: {sorted(TASK_MODULES)}."
        )
    return importlib.import_module(TASK_MODULES[name]).TASK
