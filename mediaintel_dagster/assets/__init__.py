"""One module per stage; each declares a ``Stage`` (assets/stage.py) and builds its asset.

``STAGES`` is the pipeline in data-flow order: ``build_defs`` builds every asset from it
(with the partitions of the current configuration), so a new stage is one module and one
line here.
"""

from .index import INDEX, INDEX_CODE_VERSION, index_entries
from .clip import SCENE_EMBEDDINGS, SCENE_EMBEDDINGS_CODE_VERSION, scene_embeddings
from .media import MEDIA, MEDIA_CODE_VERSION, media_assets
from .near_duplicates import KEYFRAME_HASHES, NEAR_DUPLICATES
from .ocr import OCR, OCR_CODE_VERSION, ocr_text
from .scenes import SCENES, SCENES_CODE_VERSION, scenes
from .stage import Stage, bookkeeping_specs
from .text_embeddings import TEXT_EMBEDDINGS, TEXT_EMBEDDINGS_CODE_VERSION, TEXT_SOURCES, TextSource, text_embeddings
from .transcripts import TRANSCRIPTS, TRANSCRIPTS_CODE_VERSION, transcript_segments

STAGES: tuple[Stage, ...] = (MEDIA, SCENES, OCR, SCENE_EMBEDDINGS, KEYFRAME_HASHES, NEAR_DUPLICATES, TRANSCRIPTS,
                             TEXT_EMBEDDINGS, INDEX)

__all__ = ["INDEX_CODE_VERSION", "MEDIA_CODE_VERSION", "OCR_CODE_VERSION", "SCENES_CODE_VERSION", "SCENE_EMBEDDINGS_CODE_VERSION",
           "STAGES", "Stage", "TEXT_EMBEDDINGS_CODE_VERSION", "TEXT_SOURCES", "TRANSCRIPTS_CODE_VERSION", "TextSource",
           "bookkeeping_specs", "index_entries", "media_assets", "ocr_text", "scene_embeddings", "scenes", "text_embeddings",
           "transcript_segments"]
