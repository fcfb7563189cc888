#!/usr/bin/env python3
"""Rewrites the generated table in docs/metrics.md from the metric catalogue
(src/metrics/catalogue.rs): runs the unit test that compares them and takes the table it prints."""
import os
import re
import subprocess

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
err = subprocess.run(
    ["cargo", "test", "--lib", "docs_metrics_md_holds_the_catalogue"], cwd=root, capture_output=True, text=True
)
text = err.stdout + err.stderr
if "error[" in text or "could not compile" in text:
    print(text)
    raise SystemExit("the unit tests do not build: fix that first")
if "replace the table between the markers with:" not in text:
    print("docs/metrics.md already holds the catalogue")
    raise SystemExit(0)
table = "\n".join(
    l for l in text.split("replace the table between the markers with:", 1)[1].splitlines() if l.startswith("|")
) + "\n"
path = os.path.join(root, "docs/metrics.md")
doc = open(path).read()
start = "<!-- generated from src/metrics/catalogue.rs by a test: edit the catalogue, not this table -->\n"
end = "<!-- end of the generated table -->"
doc = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: start + table + end, doc, flags=re.S)
open(path, "w").write(doc)
print("docs/metrics.md: table rewritten from the catalogue")
