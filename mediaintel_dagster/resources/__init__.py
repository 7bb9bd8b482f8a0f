from .inbox import InboxFile, LocalInboxResource
from .lakehouse import LakehouseResource

__all__ = ["InboxFile", "LakehouseResource", "LocalInboxResource"]
