"""The prediction service, the deployable half: FastAPI app, micro-batcher, process, nginx.

``app.create_app`` / ``app.app_from_env`` (the service), ``batcher.MicroBatcher``,
``nginx.NginxBalancer`` (a real nginx in front of several instances) and
``process.ServiceProcess`` (start/stop ``nepse-perf serve`` on a free loopback port). The load
generators are in :mod:`nepse_perf.bench.loadtest`, the HPA simulator and the serving
experiments in :mod:`nepse_perf.lessons`. Heavy imports stay in the modules.
"""
