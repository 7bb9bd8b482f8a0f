from .clip import SCENE_EMBEDDINGS_CODE_VERSION, scene_embeddings
from .media import MEDIA_CODE_VERSION, media_assets
from .ocr import OCR_CODE_VERSION, ocr_text
from .scenes import SCENES_CODE_VERSION, scenes
from .text_embeddings import TEXT_EMBEDDINGS_CODE_VERSION, TEXT_SOURCES, TextSource, text_embeddings
from .transcripts import TRANSCRIPTS_CODE_VERSION, transcript_segments

__all__ = ["MEDIA_CODE_VERSION", "OCR_CODE_VERSION", "SCENES_CODE_VERSION", "SCENE_EMBEDDINGS_CODE_VERSION",
           "TEXT_EMBEDDINGS_CODE_VERSION", "TEXT_SOURCES", "TRANSCRIPTS_CODE_VERSION", "TextSource",
           "media_assets", "ocr_text", "scene_embeddings", "scenes", "text_embeddings", "transcript_segments"]
