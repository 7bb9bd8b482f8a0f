from .inbox import inbox_sensor

__all__ = ["inbox_sensor"]
