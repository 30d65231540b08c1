"""Getting CloudTrail records in: AWS access, notifications, parsing, the ingester, local files, S3/SQS, demo data."""
