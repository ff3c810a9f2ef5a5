#!/usr/bin/env python3
"""Write models/imagenet_classes.txt (1000 lines, `wnid<TAB>name`, in ImageNet-1k class-index
order) from the Debian `darknet` package's ImageNet lists.

darknet ships data/imagenet.labels.list (21842 WordNet ids, one per line) and the parallel
data/imagenet.shortnames.list (one short human-readable name per line). Their first 1000 lines are
the ILSVRC-2012 classes in darknet's own order; sorting those 1000 wnids gives the standard class
index order used by every ImageNet-1k classifier (0 = n01440764 tench, 285 = n02124075 Egyptian
cat, 967 = n07920052 espresso, 999 = n15075141 toilet tissue). The script checks those anchors,
and, when timm is installed, that the order and names equal timm's own ImageNet-1k tables.

Usage: python models/make_imagenet_classes.py DARKNET_DATA_DIR
  (e.g. after `apt-get download darknet && dpkg -x darknet_*.deb /tmp/darknet`:
   DARKNET_DATA_DIR=/tmp/darknet/usr/share/darknet/data)
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ANCHORS = {0: ("n01440764", "tench"), 285: ("n02124075", "Egyptian cat"), 967: ("n07920052", "espresso"), 999: ("n15075141", "toilet tissue")}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    data = sys.argv[1]
    with open(os.path.join(data, "imagenet.labels.list")) as f:
        wnids = [x for x in f.read().split("\n") if x]
    with open(os.path.join(data, "imagenet.shortnames.list")) as f:
        names = f.read().split("\n")[: len(wnids)]
    first = wnids[:1000]
    assert len(set(first)) == 1000, "the first 1000 wnids are not distinct"
    name_of = dict(zip(first, names[:1000]))
    order = sorted(first)
    rows = [(w, name_of[w]) for w in order]
    for i, (w, n) in ANCHORS.items():
        assert rows[i] == (w, n), f"index {i}: got {rows[i]}, expected {(w, n)}"
    try:
        from timm.data import ImageNetInfo
    except ImportError:
        print("timm not installed: skipped the cross-check against timm's ImageNet-1k tables")
    else:
        info = ImageNetInfo()
        for i, (w, n) in enumerate(rows):
            assert info.index_to_label_name(i) == w, f"index {i}: {w} vs timm {info.index_to_label_name(i)}"
            assert info.index_to_description(i).split(",")[0].strip() == n, f"index {i}: name {n!r} differs from timm"
        print("cross-check: order and names equal timm's ImageNet-1k synsets and first lemmas")
    out = os.path.join(HERE, "imagenet_classes.txt")
    with open(out, "w") as f:
        for w, n in rows:
            assert "\t" not in n
            f.write(f"{w}\t{n}\n")
    print(f"wrote {out}: {len(rows)} classes")


if __name__ == "__main__":
    main()
