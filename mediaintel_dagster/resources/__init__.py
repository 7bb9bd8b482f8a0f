from .clip import ClipResource
from .inbox import InboxFile, LocalInboxResource
from .lakehouse import LakehouseResource
from .objects import ObjectStoreResource
from .ocr import OcrResource

__all__ = ["ClipResource", "InboxFile", "LakehouseResource", "LocalInboxResource", "ObjectStoreResource",
           "OcrResource"]
