"""Load-test and benchmark tools for sd-turbo-serve.

* ``python -m loadtest run ...``      drive an HTTP /predict URL or a SageMaker endpoint (Locust)
* ``python -m loadtest report ...``   rebuild summary/Markdown/plot from a raw.csv
* ``python -m loadtest.baseline_server``  the naive per-request baseline server
* ``python -m loadtest.benchmark``    baseline vs Ray Serve app on this machine, with ratios
* ``python -m loadtest.gpu_benchmark``  direct-call ceiling and the real service on a GPU (or a CPU smoke run)
* ``python -m loadtest.gpu_run``     the GPU run: wheels from the lock, one script per call, rehearsed on the CPU

Importing this package imports nothing heavy (no locust, ray or torch).
"""
