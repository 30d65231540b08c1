"""Read-only answers over the cache: queries, transforms, detections, geo, the SQL guard, charts, exports."""
