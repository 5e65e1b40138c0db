"""PyTorch's top-k membership on rows of outputs with and without ties, for the top-k rule's test.

Writes Tests/Fixtures/topk_ties.json (or the path given): a list of rows, each
  {"scores": [7 float64 values], "label": int,
   "torch": {"1": bool, "5": bool},      whether torch.topk(scores, k).indices holds the label
   "boundary_tie": {"1": bool, "5": bool}}
where boundary_tie[k] says the label's score is tied with another class across the k-th place
(fewer than k other classes score higher, k or more score at least as high), so that whether
torch.topk keeps the label depends on how it breaks ties, which it does not document (nor by
lowest index: on [2, 2, ...] its top 1 is index 1). The project's rule counts such a label as a
miss; everywhere else it must agree with torch.topk. Needs only torch (CPU): python3 scripts/make_topk_fixture.py [OUT].
"""
import json
import random
import sys

import torch

CLASSES = 7


def rows():
    rng = random.Random(20)
    out = []
    # Untied: distinct random scores, the label at every rank.
    for rank in range(CLASSES):
        scores = sorted((round(rng.uniform(-3, 3), 6) for _ in range(CLASSES)), reverse=True)
        order = list(range(CLASSES))
        rng.shuffle(order)
        row = [0.0] * CLASSES
        for r, j in enumerate(order):
            row[j] = scores[r]
        out.append((row, order[rank]))
    # All equal (a zero fc8; the seed's ReLU on negative outputs): each label.
    for label in (0, 3, 6):
        out.append(([0.0] * CLASSES, label))
    # The label tied with others at the 1st and at the 5th place, before and after them in index.
    out.append(([2.0, 2.0, 1.0, 0.5, 0.25, 0.0, -1.0], 0))
    out.append(([2.0, 2.0, 1.0, 0.5, 0.25, 0.0, -1.0], 1))
    out.append(([3.0, 2.0, 1.5, 1.0, 0.5, 0.5, 0.0], 4))
    out.append(([3.0, 2.0, 1.5, 1.0, 0.5, 0.5, 0.0], 5))
    out.append(([0.5, 3.0, 2.0, 1.5, 1.0, 0.5, 0.5], 0))
    out.append(([0.5, 3.0, 2.0, 1.5, 1.0, 0.5, 0.5], 6))
    # Ties that do not straddle k: the label tied inside the top 5, or ties among other classes.
    out.append(([2.0, 2.0, 1.0, 0.5, 0.25, 0.0, -1.0], 2))
    out.append(([1.0, 1.0, 1.0, 0.0, -1.0, -2.0, -3.0], 1))
    out.append(([4.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], 0))
    out.append(([4.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0], 1))
    out.append(([-1.0, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0], 0))
    return out


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "Tests/Fixtures/topk_ties.json"
    result = []
    for scores, label in rows():
        t = torch.tensor(scores, dtype=torch.float64)
        s = scores[label]
        higher = sum(1 for j, v in enumerate(scores) if j != label and v > s)
        at_least = sum(1 for j, v in enumerate(scores) if j != label and v >= s)
        entry = {"scores": scores, "label": label, "torch": {}, "boundary_tie": {}}
        for k in (1, 5):
            entry["torch"][str(k)] = label in torch.topk(t, k).indices.tolist()
            entry["boundary_tie"][str(k)] = higher < k <= at_least
        result.append(entry)
    with open(path, "w") as f:
        f.write("[\n" + ",\n".join(json.dumps(e, sort_keys=True) for e in result) + "\n]\n")
    print(f"{path}: {len(result)} rows, torch {torch.__version__}")


if __name__ == "__main__":
    main()
