"""The local runtime behind ``make run`` (``python -m sandbox up``): see :mod:`sandbox.runtime.core`.

Modules: :mod:`.cfn` (template intrinsics and physical names), :mod:`.aws` (moto server and provisioning),
:mod:`.functions` (handlers in-process), :mod:`.gateway` (local API Gateway), :mod:`.scheduler` (schedules),
:mod:`.queues` (SQS event sources), :mod:`.banner`.
"""

from .core import Sandbox
from .functions import HandlerError, LambdaContext
from .scheduler import ScheduleRun

__all__ = ["HandlerError", "LambdaContext", "Sandbox", "ScheduleRun"]
