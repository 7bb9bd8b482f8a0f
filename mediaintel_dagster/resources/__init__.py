from .inbox import InboxFile, LocalInboxResource
from .lakehouse import LakehouseResource
from .text_embedder import TextEmbedderResource
from .whisper import WhisperResource

__all__ = ["InboxFile", "LakehouseResource", "LocalInboxResource", "TextEmbedderResource", "WhisperResource"]
