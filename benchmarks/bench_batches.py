"""What the batch sampler draws on each dataset at its real class sizes: the classes in a
batch, the images each holds, and how many examples have no positive partner (docs,
"The paper").

The training classes' sizes are those the scale simulator writes at full size
(scripts/simulate_datasets.py: the published image and class counts, each class within
the dataset's range); validation classes are carved and the pool drawn from as the train
stage does (``dscl.training.sampling``), with the dataset's settings of params.yaml
(batch_size of ``train.dscl_last.<dataset>``, ``train.datasets.<dataset>``).

    python benchmarks/bench_batches.py --batches 200
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO))
import simulate_datasets as sim  # noqa: E402

from dscl.scoring.selection import carve_validation  # noqa: E402
from dscl.training.sampling import BatchSampler, training_pool  # noqa: E402

# the training classes of each dataset's split (the first half of CUB's and Cars' classes)
TRAIN = {
    "cub200": (100, sim.SHAPES["cub200"]),
    "cars196": (98, sim.SHAPES["cars196"]),
    "sop": (sim.SOP_SPLIT["train"].classes, sim.SOP_SPLIT["train"]),
}


def train_labels(dataset: str, rng: np.random.Generator) -> np.ndarray:
    classes, shape = TRAIN[dataset]
    sizes = sim.class_sizes(shape.classes, shape.images, shape.low, shape.high, rng)[:classes]
    return np.repeat(np.arange(classes), sizes)


def describe(dataset: str, params: dict, batches: int) -> dict:
    rng = np.random.default_rng(0)
    labels = train_labels(dataset, rng)
    data, common = params["train"]["datasets"][dataset], params["train"]["common"]
    seed = common["seeds"][0]
    candidates, _ = carve_validation(labels, data["validation_classes"], seed)
    pool, per_batch = training_pool(labels, candidates, data["class_subsample"], data["class_sampling"], seed)
    size = params["train"]["dscl_last"][dataset]["batch_size"]
    sampler = BatchSampler(pool, size, labels, per_batch)
    draw = np.random.default_rng(1)
    rows = []
    for _ in range(batches):
        batch = labels[sampler(draw)]
        _, counts = np.unique(batch, return_counts=True)
        rows.append((len(batch), len(counts), counts.mean(), (counts == 1).sum() / len(batch)))
    rows = np.array(rows)
    return {
        "dataset": dataset,
        "pool": len(pool),
        "classes": len(np.unique(labels[pool])),
        "per_batch": per_batch,
        "batch": size,
        "drawn": rows[:, 0].mean(),
        "classes_in_batch": rows[:, 1].mean(),
        "images_per_class": rows[:, 2].mean(),
        "alone": 100 * rows[:, 3].mean(),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args(argv)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    print(
        "| dataset | training pool (images, classes) | classes drawn first | batch | "
        "classes in a batch | images per class | examples alone in their class |"
    )
    print("|---|---|---|---|---|---|---|")
    for dataset in TRAIN:
        r = describe(dataset, params, args.batches)
        first = "all" if r["per_batch"] is None else f"{r['per_batch']}, anew each batch"
        print(
            f"| {dataset} | {r['pool']:,}, {r['classes']:,} | {first} | "
            f"{r['drawn']:,.0f} of {r['batch']:,} | "
            f"{r['classes_in_batch']:.1f} | {r['images_per_class']:.2f} | {r['alone']:.1f}% |"
        )


if __name__ == "__main__":
    main()
