"""The prediction service and its scaling: FastAPI app, micro-batcher, load tests, nginx, HPA.

``app.create_app`` / ``app.app_from_env`` (the service), ``batcher.MicroBatcher``,
``loadtest.run_loadtest`` (open loop) and ``loadtest.run_wrk`` (closed loop),
``nginx.NginxBalancer`` (a real nginx in front of several instances), ``hpa`` (the
Kubernetes Horizontal Pod Autoscaler's algorithm, simulated) and ``process.ServiceProcess``
(start/stop ``nepse-perf serve`` on a free loopback port). Heavy imports stay in the modules.
"""
