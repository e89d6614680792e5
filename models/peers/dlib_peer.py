#!/usr/bin/env python3
"""dlib benchmark peer: HOG detector + 5-point shape predictor + ResNet descriptor.

Run with the venv that models/peers/setup builds:
    "$dir/venv/bin/python" models/peers/dlib_peer.py [--warmup N] IMAGE...

Per image (timed end to end with time.perf_counter, decode included):
  PIL decode, EXIF orientation applied (ImageOps.exif_transpose), RGB uint8 array;
  dlib.get_frontal_face_detector() with upsample 1;
  shape_predictor_5_face_landmarks (face_recognition_models);
  face_recognition_model_v1.compute_face_descriptor(img, shape, 0) per face.
num_jitters=0 is allowed (it is the binding's default) and means one pass, no jitter;
dlib aligns the 150x150 chip itself (padding 0.25).
The first image is first run --warmup times (default 1), untimed.

Stdout: one JSON line per image, then a summary line (see README.md); "decode_seconds"
is the decode share of "seconds".
"""
import argparse
import json
import sys
import time

import dlib
import face_recognition_models as frm
import numpy as np
from PIL import Image, ImageOps

PEER = "dlib 20.0.1 (dlib-bin, HOG + sp5 + ResNet)"

detector = dlib.get_frontal_face_detector()
shape_predictor = dlib.shape_predictor(frm.pose_predictor_five_point_model_location())
encoder = dlib.face_recognition_model_v1(frm.face_recognition_model_location())


def process(path):
    """Full pipeline on one image; returns (width, height, descriptors, decode seconds)."""
    t0 = time.perf_counter()
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im).convert("RGB")
        img = np.asarray(im, dtype=np.uint8)
    decode_s = time.perf_counter() - t0
    boxes = detector(img, 1)
    descriptors = [
        encoder.compute_face_descriptor(img, shape_predictor(img, box), 0)
        for box in boxes
    ]
    return img.shape[1], img.shape[0], descriptors, decode_s


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warmup", type=int, default=1, help="untimed runs of the first image")
    ap.add_argument("images", nargs="+")
    args = ap.parse_args()

    for _ in range(args.warmup):
        process(args.images[0])

    total_s = total_decode_s = 0.0
    total_faces = 0
    for path in args.images:
        t0 = time.perf_counter()
        w, h, descriptors, decode_s = process(path)
        dt = time.perf_counter() - t0
        total_s += dt
        total_decode_s += decode_s
        total_faces += len(descriptors)
        print(json.dumps({"path": path, "width": w, "height": h,
                          "faces": len(descriptors), "seconds": round(dt, 6),
                          "decode_seconds": round(decode_s, 6)}, separators=(",", ":")), flush=True)

    n = len(args.images)
    print(json.dumps({
        "peer": PEER, "images": n, "faces": total_faces, "seconds": round(total_s, 6),
        "s_per_image": round(total_s / n, 6),
        "faces_per_s": round(total_faces / total_s, 3) if total_s > 0 else None,
        "decode_seconds": round(total_decode_s, 6),
    }, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    sys.exit(main())
