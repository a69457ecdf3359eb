"""Write the synthetic COCO-format shapes set: ROOT/{train,val,test}/ and ROOT/annotations/."""
import argparse
from typing import List, Optional

from mmdas.datasets import make_shapes_coco


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('root', nargs='?', default='data/shapes')
    parser.add_argument('--num-train', type=int, default=400)
    parser.add_argument('--num-val', type=int, default=100)
    parser.add_argument('--num-test', type=int, default=100)
    parser.add_argument('--size', type=int, default=160)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    paths = make_shapes_coco(args.root, args.num_train, args.num_val, args.num_test, args.size,
                             args.seed)
    print('wrote ' + ', '.join(paths.values()))


if __name__ == '__main__':
    main()
