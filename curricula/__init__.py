"""Curricula: route queries by band, keep demonstrations diverse, order and stage them."""
