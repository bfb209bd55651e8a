#!/bin/sh
# A fake Spark GPU discovery script for CPU-only test machines: one GPU, address "0".
echo '{"name": "gpu", "addresses": ["0"]}'
