"""Trains a linear model y = a*x + b by gradient descent: a Gantry command task.

Gantry writes the task's inputs under $GANTRY_INPUTS (one file per field: `data` is the CSV the
preprocessing step stored, `epochs` and `lr` are JSON) and reads its outputs back from $GANTRY_OUTPUTS
(`model` is stored as an artifact, `loss` is JSON). Standard library only.
"""
import csv
import json
import os

inputs, outputs = os.environ["GANTRY_INPUTS"], os.environ["GANTRY_OUTPUTS"]


def read(name):
    with open(os.path.join(inputs, name)) as f:
        return json.load(f)


with open(os.path.join(inputs, "data"), newline="") as f:
    rows = [(float(x), float(y)) for x, y in csv.reader(f)]
epochs, lr = read("epochs"), read("lr")
print(f"training on {len(rows)} rows for {epochs} epochs (GANTRY_ATTEMPT={os.environ['GANTRY_ATTEMPT']})", flush=True)

a = b = 0.0
n = len(rows)
for epoch in range(1, epochs + 1):
    da = sum((a * x + b - y) * x for x, y in rows) * 2 / n
    db = sum((a * x + b - y) for x, y in rows) * 2 / n
    a, b = a - lr * da, b - lr * db
    loss = sum((a * x + b - y) ** 2 for x, y in rows) / n
    if epoch % max(1, epochs // 5) == 0:
        print(f"epoch {epoch}: loss {loss:.4f}", flush=True)

with open(os.path.join(outputs, "model"), "w") as f:
    json.dump({"a": a, "b": b}, f)
with open(os.path.join(outputs, "loss"), "w") as f:
    json.dump(loss, f)
