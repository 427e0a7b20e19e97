"""The exported dynamic symbols of libllmkit.so must be exactly the functions
declared with LLMKIT_API in include/llmkit/llmkit.h: nothing missing, nothing extra."""
import re
import subprocess
import sys

header, library = sys.argv[1], sys.argv[2]
text = open(header, encoding="utf-8").read()
declared = set(re.findall(r"LLMKIT_API[^;{]*?\b(llmkitx?_\w+)\s*\(", text))
out = subprocess.run(["nm", "-D", "--defined-only", library], check=True, capture_output=True, text=True).stdout
exported = set()
for line in out.splitlines():
    parts = line.split()
    if len(parts) >= 3 and parts[1] in ("T", "W", "D", "B", "R", "V"):
        exported.add(parts[2].split("@")[0])
missing = sorted(declared - exported)
extra = sorted(exported - declared)
print(f"declared {len(declared)}, exported {len(exported)}")
if missing:
    print("declared but not exported:", *missing, sep="\n  ")
if extra:
    print("exported but not declared:", *extra, sep="\n  ")
if missing or extra or not declared:
    sys.exit(1)
print("exports: 1 passed, 0 failed")
