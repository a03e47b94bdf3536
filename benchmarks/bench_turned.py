"""How honest are a run's sure answers on digits turned away from upright?

MNIST test digits (2,000 drawn at random, a seed), each turned by an angle, alternately clockwise and
anticlockwise (its 28×28 picture turned about its centre), answered as ``digitlab predict`` answers a prepared
picture, with the run's calibration and not-a-digit detector. For each angle: the share answered as a sure digit,
how often those are right and the confidence they state, the share turned away as "not a digit", and the accuracy
of the top digit over all. The README's "How sure is it, really?" quotes it.

    python benchmarks/bench_turned.py --model runs/<mnist run> [--n 2000] [--angles 0,20,30,45,90]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import ndimage

from digitlab.data import load_dataset
from digitlab.predict import predict_images
from digitlab.store import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="run folder of an MNIST model")
    parser.add_argument("--n", type=int, default=2000, help="test digits")
    parser.add_argument("--angles", default="0,20,30,45,90", help="degrees, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loaded = load_model(args.model)
    data = load_dataset("mnist")
    pick = np.random.default_rng(args.seed).choice(len(data.test_labels), args.n, replace=False)
    images, labels = data.test_images[pick], data.test_labels[pick]
    print(f"{loaded.id}: {args.n:,} MNIST test digits, each turned either way")
    print("angle   sure   right when sure   stating   not a digit   top digit right")
    for angle in (float(a) for a in args.angles.split(",")):
        turned = np.stack([ndimage.rotate(image, angle if k % 2 else -angle, reshape=False, order=1)
                           for k, image in enumerate(images)])
        answers = predict_images(loaded, loaded.card, turned)
        kind = np.array([a.kind for a in answers])
        digit, stated = np.array([a.digit for a in answers]), np.array([a.probability for a in answers])
        sure = kind == "digit"
        print(f"{angle:4.0f}°  {sure.mean():6.1%}   {(digit[sure] == labels[sure]).mean():14.2%}   "
              f"{stated[sure].mean():7.2%}   {np.mean(kind == 'not_a_digit'):11.1%}   {(digit == labels).mean():15.2%}")


if __name__ == "__main__":
    main()
