output "alarm_names" {
  description = "CloudWatch alarm names by key."
  value       = { for k, v in aws_cloudwatch_metric_alarm.this : k => v.alarm_name }
}

output "alarm_thresholds" {
  description = "Thresholds as applied, by alarm key (GPU alarms: per-GPU percentage x GPUs per instance; latency: microseconds)."
  value       = { for k, v in aws_cloudwatch_metric_alarm.this : k => v.threshold }
}

output "rollback_alarm_names" {
  description = "Alarms that roll back a blue/green deployment (the new fleet's 5xx rate and p90 latency)."
  value       = [for k, v in aws_cloudwatch_metric_alarm.this : v.alarm_name if local.alarms[k].rollback]
}

output "dashboard_name" {
  description = "CloudWatch dashboard name (null when not created)."
  value       = one(aws_cloudwatch_dashboard.this[*].dashboard_name)
}

output "dashboard_url" {
  description = "Console URL of the dashboard (null when not created)."
  value       = var.create_dashboard ? "https://${local.region}.console.aws.amazon.com/cloudwatch/home?region=${local.region}#dashboards/dashboard/${var.name}" : null
}
