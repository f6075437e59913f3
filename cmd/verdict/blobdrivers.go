package main

// Evidence bucket drivers for VERDICT_EVIDENCE_URL: s3:// (AWS S3 and S3-compatible
// stores) and gs:// (Google Cloud Storage). Both sign upload URLs, so clients upload
// straight to the bucket and Verdict only reads objects back to check their hash.
import (
	_ "gocloud.dev/blob/gcsblob" // gs://bucket
	_ "gocloud.dev/blob/s3blob"  // s3://bucket?region=...
)
