"""One module per pipeline stage: plain typed functions, and the Prefect tasks that wrap them."""
