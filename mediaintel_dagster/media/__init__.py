"""Pure media code: probing, shot detection, audio decoding, keyframes, OCR post-processing,
image features and sample generation. Nothing in this package imports Dagster (a test
imports every module of it on its own and checks), so it can be used from scripts,
benchmarks and other orchestrators; the Dagster side wraps it in resources and assets."""
