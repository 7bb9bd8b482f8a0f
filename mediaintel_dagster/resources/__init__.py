from .inbox import InboxFile, LocalInboxResource
from .lakehouse import LakehouseResource
from .objects import ObjectStoreResource

__all__ = ["InboxFile", "LakehouseResource", "LocalInboxResource", "ObjectStoreResource"]
