"""The REST API's response bodies (pydantic): what `/v1/openapi.json` promises a client."""

from __future__ import annotations

from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="machine-readable: invalid_request, unauthorized, not_found, timeout, ...")
    message: str = Field(description="one sentence for people")
    details: Any = Field(default=None, description="what was wrong, where there is more to say (e.g. each invalid field)")


class ErrorResponse(BaseModel):
    """The one shape of every 4xx and 5xx answer."""

    error: ErrorDetail


class Why(BaseModel):
    retriever: str = Field(description="vector, keyword or picture")
    model_id: str
    rank: int = Field(description="the item's rank in that retriever's list, from 1")
    score: float = Field(description="that retriever's raw score: cosine for vectors, BM25 for keywords")


class SearchHit(BaseModel):
    media_id: str
    source_uri: Optional[str] = Field(description="where the media was first seen")
    item_kind: str = Field(description="segment (speech), ocr (text on a keyframe) or scene (a shot's picture)")
    item_index: int = Field(description="segment_index, or scene_index for ocr and scene items")
    start_s: Optional[float] = Field(description="seconds from the start of the media")
    end_s: Optional[float]
    score: float = Field(description="fused reciprocal-rank score: higher is better")
    text: Optional[str] = Field(description="the speech or on-screen text of the item")
    model_id: str = Field(description="the model of the best-ranked retriever that found it")
    matched: list[str] = Field(description="speech, on-screen text, picture, keyword")
    matched_words: list[str] = Field(description="query words found in the item's text")
    why: list[Why]
    scene_index: Optional[int] = Field(description="the shot the item lies in (null: no picture)")
    keyframe_url: Optional[str] = Field(description="that shot's keyframe JPEG")
    media_url: str = Field(description="the media's page on this server")
    play_url: str = Field(description="the media's page, playing from start_s")


class SearchPage(BaseModel):
    query: str
    mode: str
    hits: list[SearchHit]
    page: int
    k: int
    candidates: int = Field(description="distinct items the retrievers returned for the query")
    retrievers: dict[str, str] = Field(description="retriever -> 'used' or why it was not")
    notes: list[str] = Field(description="why the page is short or empty, for people")
    min_score: Optional[float] = None


class SimilarScene(BaseModel):
    query_scene: int = Field(description="the query's keyframe (scene) number")
    scene_index: int = Field(description="this media's scene nearest it")
    score: float


class SimilarMedia(BaseModel):
    media_id: str
    source_uri: Optional[str]
    score: float = Field(description="mean over the query's keyframes of the best cosine to this media's scenes")
    matched_scenes: int
    scenes: list[SimilarScene]
    keyframe_url: Optional[str] = Field(description="the keyframe of its best matching scene")
    media_url: str


class SimilarQuery(BaseModel):
    label: str
    model_id: str
    scenes: int = Field(description="keyframes of the query")
    media_id: Optional[str] = None
    file: Optional[str] = Field(default=None, description="the uploaded file's name")


class SimilarResponse(BaseModel):
    query: SimilarQuery
    media: list[SimilarMedia]


class Scene(BaseModel):
    model_config = ConfigDict(extra="allow")

    scene_index: int
    start_s: Optional[float]
    end_s: Optional[float]
    keyframe_s: Optional[float]
    keyframe_url: Optional[str]
    extra_keyframe_urls: list[str] = Field(default_factory=list)
    transition: Optional[str] = None
    ocr_text: Optional[str] = Field(default=None, description="the lines read on its keyframes")


class Segment(BaseModel):
    model_config = ConfigDict(extra="allow")

    segment_index: int
    start_s: Optional[float]
    end_s: Optional[float]
    text: Optional[str]
    language: Optional[str] = None
    avg_logprob: Optional[float] = None


class OcrLine(BaseModel):
    model_config = ConfigDict(extra="allow")

    scene_index: int
    line_index: int
    text: Optional[str]
    confidence: Optional[float] = None
    keyframe_s: Optional[float] = None


class MediaDetail(BaseModel):
    media_id: str
    media: dict[str, Any] = Field(description="the probe: the media table's row")
    file_url: Optional[str] = Field(description="the original file, streamed with Range support (null: not readable here)")
    sources: list[dict[str, Any]] = Field(description="every location the bytes were found at (media_sources)")
    scenes: list[Scene]
    transcript: list[Segment]
    ocr: list[OcrLine]
    near_duplicates: list[dict[str, Any]]
    audit: list[dict[str, Any]] = Field(description="lineage: every stage's audit_log rows for the media, oldest first")
    quarantine: list[dict[str, Any]]


class Health(BaseModel):
    status: str
    version: str
    lake_id: str = Field(description="a hash of the lake root this service serves (config.lake_id)")


class Ready(BaseModel):
    status: str = Field(description="ready or not_ready")
    checks: dict[str, str] = Field(description="lakehouse, index, models: ok or what is wrong")
    index_counts: dict[str, int] = Field(default_factory=dict, description="vectors per model_id")
    auth: str = Field(description="api_keys, or loopback_only when no keys are configured")
