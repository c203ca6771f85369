"""FVD reference statistics of a real video set: the mean (400,) and covariance (400, 400) of
the I3D logits of its clips (Unterthiner et al., 2018, eq. 1; `flowjax.metrics.fvd`), written
as an .npz (`mu`, `sigma`, `count`) that `flowjax.metrics.fvd.fvd(..., reference=PATH)` reads.

The videos are a local folder in the layout of the "video_folder" source
(`flowjax.data.videos.VideoFolderReader`: <data>/<split>/<video>/<frame>.png or
<data>/<split>/<video>.npy), cut into clips of `--frames` frames, each frame resized as TATS
does (shorter side to `--resolution`, centre crop; MeBT: 128), then scored as generated clips
are (resized to 224, [-1, 1]). `--num-clips` clips are drawn without replacement with
`--seed` (MeBT / TATS: 2,048 clips of 16 frames for FVD16, 512 of 128 frames for FVD128), all
of them if the set has fewer. The I3D weights (`i3d_pretrained_400.pt` or its .npz copy; see
`flowjax.models.convert_i3d`) are checked before any video is read.

    .venv/bin/python experiments/metrics/fvd_reference.py --data /data/ucf101 --split train \\
        --frames 16 --resolution 128 --num-clips 2048 --weights i3d_pretrained_400.pt \\
        --out ucf101_train_128px_16f_fvd.npz
"""

from __future__ import annotations

import argparse

import numpy as np

from flowjax.data.videos import VideoFolderReader
from flowjax.metrics import fvd
from flowjax.models.convert_i3d import load_i3d


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--data", required=True, help="the folder holding <split>/<video>...")
    add("--split", default="train")
    add("--frames", type=int, default=16)
    add("--resolution", type=int, default=128)
    add("--num-clips", type=int, default=2048)
    add("--batch-size", type=int, default=16)
    add("--seed", type=int, default=0)
    add("--weights", default=None, help="i3d_pretrained_400.pt or .npz (default: $FLOWJAX_I3D_WEIGHTS)")
    add("--out", required=True, help="the .npz to write")
    args = parser.parse_args(argv)
    network = load_i3d(args.weights)
    reader = VideoFolderReader(args.data, args.split, args.frames, args.resolution)
    count = min(args.num_clips, len(reader))
    if count < 2:
        raise ValueError(f"A covariance needs at least 2 clips; {args.data}/{args.split} has {len(reader)}.")
    indices = np.sort(np.random.default_rng(args.seed).choice(len(reader), count, replace=False))
    batches = (
        np.stack([reader.clip(int(i)) for i in indices[start : start + args.batch_size]])
        for start in range(0, count, args.batch_size)
    )
    stats = fvd.fvd_statistics(network, batches, count, batch_size=args.batch_size)
    stats.save(args.out)
    print(f"Wrote the statistics of {stats.count} clips of {args.split} to {args.out}")


if __name__ == "__main__":
    main()
