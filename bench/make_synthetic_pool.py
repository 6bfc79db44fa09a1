"""Write a harder synthetic many-class pool as an .npz for `mpts-fast --dataset PATH.npz`
(`python -m bench synthetic-pool PATH.npz`).

50 classes, 96 features, 3 clusters per class, class imbalance and 2% label noise, fixed seed:
it mimics a many-class image pool while staying small enough for seconds-long AL runs on 2 cores.
Keys: x_train (N, 96) float32, y_train (N,) int64, x_test (M, 96) float32, y_test (M,) int64.
"""
from pathlib import Path

import click
import numpy as np
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split


@click.command()
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--seed", default=0, show_default=True)
@click.option("--classes", default=50, show_default=True)
@click.option("--features", default=96, show_default=True)
@click.option("--samples", default=5000, show_default=True)
def main(out: Path, seed: int, classes: int, features: int, samples: int) -> None:
    # Geometric class weights give a ~4x imbalance between the largest and smallest class.
    weights = np.geomspace(4.0, 1.0, classes)
    x, y = make_classification(
        n_samples=samples, n_features=features, n_informative=features // 2, n_redundant=features // 8,
        n_classes=classes, n_clusters_per_class=3, weights=list(weights / weights.sum()),
        flip_y=0.02, class_sep=4.0, random_state=seed)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, x_train=x_tr.astype(np.float32), y_train=y_tr.astype(np.int64),
                        x_test=x_te.astype(np.float32), y_test=y_te.astype(np.int64))
    click.echo(f"wrote {out}: {len(y_tr)} train, {len(y_te)} test, {classes} classes")


if __name__ == "__main__":
    main()
