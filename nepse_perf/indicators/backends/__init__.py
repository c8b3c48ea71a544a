"""The indicator backends, one module per backend name (see ``nepse_perf.pipeline.BACKENDS``)."""
