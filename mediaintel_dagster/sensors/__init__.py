from .inbox import inbox_sensor
from .index_guard import index_guard_sensor
from .redrive import redrive_sensor

__all__ = ["inbox_sensor", "index_guard_sensor", "redrive_sensor"]
