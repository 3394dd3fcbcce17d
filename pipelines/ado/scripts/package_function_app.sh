#!/usr/bin/env bash
# Zip what the Function App runs (function_app.py, host.json, requirements.txt and the packages it
# imports) to $1; the platform installs requirements.txt (remote build).
set -euo pipefail
out="$(realpath -m "${1:?usage: package_function_app.sh OUT.zip}")"
cd "$(dirname "$0")/../../.."
rm -f "$out"
python3 - "$out" <<'PY'
import pathlib, sys, zipfile
out = pathlib.Path(sys.argv[1])
include = ["function_app.py", "host.json", "requirements.txt", "shared", "scoring",
           "pipelines/aml", "pipelines/amlv2", "pipelines/configuration"]
skip = {"__pycache__", ".pytest_cache", "tests"}
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for item in include:
        path = pathlib.Path(item)
        if not path.exists():
            continue
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for f in files:
            if not skip.intersection(f.parts) and f.suffix != ".pyc":
                z.write(f, f.as_posix())
print(f"packaged {out} ({out.stat().st_size // 1024} KiB)")
PY
