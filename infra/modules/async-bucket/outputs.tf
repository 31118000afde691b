output "bucket_id" {
  description = "Bucket name."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "Bucket ARN."
  value       = aws_s3_bucket.this.arn
}

output "prefixes" {
  description = "The async key prefixes (input, output, failure)."
  value       = var.prefixes
}
