"""Input pipelines: grain datasets over toy distributions (2D, torus, sphere), arrays, ArrayRecord
and TFDS, tokenized text (local .txt files, LM1B / OpenWebText, Python's documentation) with
its tokenizers (`load_tokenizer`, `decode_tokens`), and point-cloud sets for SetVAE
(`flowjax.data.pointclouds`: synthetic shapes, Set-MultiMNIST from scikit-learn's digits,
ShapeNet).

`build_dataset(config, global_batch_size=..., seed=..., process_index=..., process_count=...)`
turns the `data` sub-config of an experiment into an infinite, checkpointable
`grain.DatasetIterator` of this process's batches; `event_shape(config)` and
`num_classes(config)` describe the data without iterating. See `flowjax.data.pipeline` for
the determinism and sharding contract, `flowjax.data.toy` for the exact toy distributions
(supports and densities) and `flowjax.data.sources` for the ArrayRecord record format.

Example:

    import ml_collections
    from flowjax import data

    cfg = ml_collections.ConfigDict(dict(source="toy", name="checkerboard"))
    it = data.build_dataset(cfg, global_batch_size=4096, seed=0)
    batch = next(it)                      # {"x": float32 (4096, 2)}
    state = it.get_state()                # {"next_index": 1}; or, with Orbax,
                                          # grain.checkpoint.CheckpointSave(it)
"""

from flowjax.data.pipeline import (
    SOURCES,
    EpochIndexSampler,
    build_dataset,
    build_map_dataset,
    context_shape,
    control_dim,
    dataset_from_arrays,
    decode_tokens,
    event_shape,
    language,
    num_classes,
    parse_config,
    vocab_size,
)
from flowjax.data import languages
from flowjax.data.discrete_toy import DISCRETE_CHECKERBOARD_NLL, DISCRETE_TOYS
from flowjax.data.images import (
    IMAGE_DATASETS,
    ImageDataset,
    image_data_config,
    image_grid,
    load_digits,
    save_image_grid,
)
from flowjax.data.pointclouds import (
    POINT_CLOUD_SETS,
    SHAPE_FAMILIES,
    SHAPENET_SYNSETS,
    sample_surface,
    set_multimnist_record,
    shapenet_statistics,
    shapes_record,
)
from flowjax.data.sources import (
    decode_records,
    encode_records,
    save_couplings,
    write_array_record,
)
from flowjax.data.text_embeddings import TextEmbeddings, save_text_embeddings
from flowjax.data.videos import (
    MovingDigits,
    moving_digits,
    read_video_tokens,
    write_video_tokens,
)
from flowjax.data.latents import decode_in_batches, latents_glob, sample_moments, write_latents
from flowjax.data.tokenizers import (
    ByteLevelTokenizer,
    ByteTokenizer,
    HFTokenizer,
    MaxPrefixTokenizer,
    Tokenizer,
    byte_level_alphabet,
    load_tokenizer,
)
from flowjax.data.toy import (
    CHECKERBOARD_LOG_DENSITY,
    CHECKERBOARD_NLL,
    TOY_DISTRIBUTIONS,
    in_support,
    log_density,
    sample_toy,
    toy_batch,
    toy_event_shape,
    toy_manifold,
    toy_vocab_size,
)

__all__ = [
    "CHECKERBOARD_LOG_DENSITY",
    "CHECKERBOARD_NLL",
    "DISCRETE_CHECKERBOARD_NLL",
    "DISCRETE_TOYS",
    "IMAGE_DATASETS",
    "ByteLevelTokenizer",
    "ByteTokenizer",
    "HFTokenizer",
    "ImageDataset",
    "MaxPrefixTokenizer",
    "POINT_CLOUD_SETS",
    "SHAPENET_SYNSETS",
    "SHAPE_FAMILIES",
    "SOURCES",
    "TOY_DISTRIBUTIONS",
    "EpochIndexSampler",
    "MovingDigits",
    "TextEmbeddings",
    "Tokenizer",
    "build_dataset",
    "byte_level_alphabet",
    "build_map_dataset",
    "context_shape",
    "control_dim",
    "dataset_from_arrays",
    "decode_in_batches",
    "decode_records",
    "decode_tokens",
    "encode_records",
    "event_shape",
    "image_data_config",
    "moving_digits",
    "read_video_tokens",
    "write_video_tokens",
    "image_grid",
    "in_support",
    "language",
    "latents_glob",
    "languages",
    "load_digits",
    "sample_moments",
    "sample_surface",
    "set_multimnist_record",
    "shapenet_statistics",
    "shapes_record",
    "save_text_embeddings",
    "write_latents",
    "load_tokenizer",
    "log_density",
    "num_classes",
    "parse_config",
    "sample_toy",
    "save_couplings",
    "save_image_grid",
    "toy_batch",
    "toy_event_shape",
    "toy_manifold",
    "toy_vocab_size",
    "vocab_size",
    "write_array_record",
]
