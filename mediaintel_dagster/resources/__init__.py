from .clip import ClipResource
from .inbox import InboxFile, LocalInboxResource
from .lakehouse import LakehouseResource
from .objects import ObjectStoreResource
from .ocr import OcrResource
from .text_embedder import TextEmbedderResource
from .whisper import WhisperResource

__all__ = ["ClipResource", "InboxFile", "LakehouseResource", "LocalInboxResource", "ObjectStoreResource",
           "OcrResource", "TextEmbedderResource", "WhisperResource"]
