"""Experiments: one module per task (model wiring, loss, data); sgvu.tasks.registry names them."""
