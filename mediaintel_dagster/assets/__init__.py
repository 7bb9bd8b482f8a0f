from .media import MEDIA_CODE_VERSION, media_assets
from .scenes import SCENES_CODE_VERSION, scenes

__all__ = ["MEDIA_CODE_VERSION", "SCENES_CODE_VERSION", "media_assets", "scenes"]
