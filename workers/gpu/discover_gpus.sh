#!/bin/sh
# Spark GPU discovery script (spark.worker.resource.gpu.discoveryScript on standalone workers,
# spark.executor.resource.gpu.discoveryScript on YARN NodeManagers). Prints one JSON line:
#   {"name": "gpu", "addresses": ["0", "1"]}
# The addresses are nvidia-smi indices (PCI bus order); TFoS puts the ones Spark assigns to a task
# into CUDA_VISIBLE_DEVICES (the job sets CUDA_DEVICE_ORDER=PCI_BUS_ID so CUDA counts the same way).
#
# No nvidia-smi, or nvidia-smi failing (no driver), prints an EMPTY list and exits 0, with the
# reason on stderr: Spark then refuses to start a worker (or executor) asked for more GPUs than were
# found ("... is less than what the user requested"), which names the real problem; a non-zero exit
# would only say that the script failed.
#
# SPARKDECK_GPU_ADDRESSES (optional, comma-separated indices) keeps only those GPUs: several workers
# on one host must not report the same GPUs (workers.localcluster gives each worker its own slice).
set -u
set -f  # no globbing of nvidia-smi output

indices=""
if command -v nvidia-smi >/dev/null 2>&1; then
    if ! indices=$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null); then
        echo "discover_gpus.sh: nvidia-smi failed; reporting no GPUs" >&2
        indices=""
    fi
else
    echo "discover_gpus.sh: nvidia-smi not found on PATH; reporting no GPUs" >&2
fi

only="${SPARKDECK_GPU_ADDRESSES:-}"
addresses=""
for i in $indices; do
    case "$i" in
        *[!0-9]*) continue ;;  # not an index (e.g. an error message on stdout)
    esac
    if [ -n "$only" ]; then
        case ",$only," in
            *",$i,"*) ;;
            *) continue ;;
        esac
    fi
    addresses="${addresses:+$addresses, }\"$i\""
done
printf '{"name": "gpu", "addresses": [%s]}\n' "$addresses"
