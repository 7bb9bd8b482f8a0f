from .media import MEDIA_CODE_VERSION, media_assets

__all__ = ["MEDIA_CODE_VERSION", "media_assets"]
