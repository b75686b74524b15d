"""ragreel's HTTP API and web page over the Prefect deployments: ``python -m ragreel.api``."""
