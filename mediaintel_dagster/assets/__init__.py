from .media import MEDIA_CODE_VERSION, media_assets
from .text_embeddings import TEXT_EMBEDDINGS_CODE_VERSION, TEXT_SOURCES, TextSource, text_embeddings
from .transcripts import TRANSCRIPTS_CODE_VERSION, transcript_segments

__all__ = [
    "MEDIA_CODE_VERSION", "TEXT_EMBEDDINGS_CODE_VERSION", "TEXT_SOURCES", "TRANSCRIPTS_CODE_VERSION", "TextSource",
    "media_assets", "text_embeddings", "transcript_segments",
]
