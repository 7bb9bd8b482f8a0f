from .inbox import inbox_sensor
from .redrive import redrive_sensor

__all__ = ["inbox_sensor", "redrive_sensor"]
