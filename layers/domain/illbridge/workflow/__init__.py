"""The workflow steps of the seed (product.md): each one claims, acts, records and announces."""
