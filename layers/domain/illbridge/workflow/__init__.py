"""The workflow steps (docs/architecture.md#the-workflow-steps): each one claims, acts, records and announces."""
