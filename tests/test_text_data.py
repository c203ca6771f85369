"""Tests for the tokenizers and tokenized text sources of flowjax.data (text_files, tfds_text,
python_docs): round trips, exact rows of the MDLM preparations on tiny local TFDS datasets,
resume and process splits, the token cache, and the errors. Nothing is downloaded: tokenizer
files are trained here with the `tokenizers` library, TFDS datasets built in a temporary dir."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from flowjax import data
from flowjax.data import text

SENTENCES = [
    "the quick brown fox jumps over the lazy dog",
    "a cat sat on the mat and it 's happy !",
    "hello world , the world says hello",
    "flows match data with a velocity field .",
]
LM1B_TRAIN = [
    "the cat sat on the mat .",
    "it 's a dog , not a cat !",
    "hello world",
    "the fox jumps over the lazy dog ?",
    "a world of data",
]
LM1B_TEST = ["it 's ok ."]
OWT_DOCS = [f"document {i}: the quick brown fox jumps over the lazy dog {i} times." for i in
            range(7)]


def take(it, k):
    return [next(it) for _ in range(k)]


# ------------------------------------------------------------------------------------------
# Tokenizer files trained here: a GPT-2-like byte-level BPE, a BERT-like WordPiece.


@pytest.fixture(scope="module")
def bpe_dir(tmp_path_factory):
    """A byte-level BPE with <|endoftext|>, saved as save_pretrained saves GPT-2's."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES + OWT_DOCS, trainer)
    directory = tmp_path_factory.mktemp("gpt2_like")
    tok.save(str(directory / "tokenizer.json"))
    special = {"content": "<|endoftext|>", "lstrip": False, "normalized": True}
    names = ("bos_token", "eos_token", "unk_token")
    (directory / "special_tokens_map.json").write_text(json.dumps(dict.fromkeys(names, special)))
    return str(directory)


@pytest.fixture(scope="module")
def wordpiece_file(tmp_path_factory):
    """A lower-casing WordPiece with [CLS] / [SEP] (no special_tokens_map.json)."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=200,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    tok.train_from_iterator(SENTENCES + LM1B_TRAIN + LM1B_TEST, trainer)
    path = tmp_path_factory.mktemp("bert_like") / "tokenizer.json"
    tok.save(str(path))
    return str(path)


def test_byte_tokenizer_round_trip():
    tok = data.load_tokenizer("bytes")
    assert isinstance(tok, data.ByteTokenizer)
    assert (tok.vocab_size, tok.eos_id, tok.bos_id, tok.sep_id) == (257, 256, None, None)
    s = "Flows -> ünïcode ✓ text\n"
    ids = tok.encode(s)
    assert ids == list(s.encode("utf-8")) and max(ids) < 256
    np.testing.assert_array_equal(tok.encode_batch([s, ""])[0], ids)
    assert tok.encode_batch([s, ""])[1].shape == (0,)
    assert tok.decode(ids + [256]) == s  # end-of-text dropped
    assert tok.decode(np.array([104, 105, 0xFF, 256, 33])) == "hi\ufffd!"  # invalid UTF-8


def test_bpe_tokenizer_round_trip(bpe_dir):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(os.path.join(bpe_dir, "tokenizer.json"))
    tok = data.load_tokenizer(bpe_dir)  # a directory holding tokenizer.json
    assert isinstance(tok, data.HFTokenizer)
    eot = raw.token_to_id("<|endoftext|>")
    assert tok.vocab_size == raw.get_vocab_size() and tok.bos_id == tok.eos_id == eot
    assert tok.sep_id is None
    s = "the lazy fox says hello, wörld ✓"
    ids = tok.encode(s)
    assert eot not in ids and tok.decode(ids) == s
    assert tok.decode([eot, *ids, eot]) == s
    for a, b in zip(tok.encode_batch([s, SENTENCES[0]]), [ids, tok.encode(SENTENCES[0])],
                    strict=True):
        assert a.dtype == np.int32 and a.tolist() == b


def test_wordpiece_tokenizer_round_trip(wordpiece_file):
    from tokenizers import Tokenizer

    raw = Tokenizer.from_file(wordpiece_file)
    tok = data.load_tokenizer(wordpiece_file)  # the file itself
    cls, sep = raw.token_to_id("[CLS]"), raw.token_to_id("[SEP]")
    assert (tok.bos_id, tok.eos_id, tok.sep_id) == (cls, sep, sep)
    ids = tok.encode("The cat sat on the mat")
    assert cls not in ids and sep not in ids
    assert tok.decode(ids) == "the cat sat on the mat"
    assert tok.decode([cls, *ids, sep, tok.vocab_size + 5]) == "the cat sat on the mat"


def test_missing_tokenizer_file_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"(?s)nope/tokenizer.json.*save_pretrained"):
        data.load_tokenizer(str(tmp_path / "nope" / "tokenizer.json"))
    empty = tmp_path / "gpt2"
    empty.mkdir()
    cfg = dict(source="python_docs", seq_len=8, tokenizer=str(empty), cache_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"gpt2/tokenizer.json.*does not exist"):
        data.build_dataset(cfg, global_batch_size=2, seed=0)
    with pytest.raises(FileNotFoundError, match="AutoTokenizer"):
        data.vocab_size(cfg)


# ------------------------------------------------------------------------------------------
# text_files and python_docs.


@pytest.fixture()
def corpus_dir(tmp_path):
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    docs = {
        "b.txt": "\n".join(SENTENCES) + "\n",
        "a.txt": "short one\nsecond line ü\n",
        "sub/c.txt": "x" * 50 + "\nend of c\n",
        "ignored.md": "not a .txt file",
    }
    for name, body in docs.items():
        (root / name).write_text(body, encoding="utf-8")
    return root, [docs["a.txt"], docs["b.txt"], docs["sub/c.txt"]]  # sorted path order


def plain_rows(documents, tok, seq_len):
    stream = []
    for d in documents:
        if d:
            stream += tok.encode(d) + [tok.eos_id]
    n = len(stream) // seq_len
    return np.asarray(stream[: n * seq_len], np.int32).reshape(n, seq_len)


def test_text_files_rows_splits_and_metadata(corpus_dir, tmp_path):
    root, documents = corpus_dir
    for doc in documents:  # the two splits partition every document
        assert text.split_document(doc, "train") + text.split_document(doc, "test") == doc
    assert text.split_document(documents[1], "test") == SENTENCES[-1] + "\n"
    cfg = dict(source="text_files", path=str(root), seq_len=8, shuffle=False,
               cache_dir=str(tmp_path / "cache"))
    assert data.event_shape(cfg) == (8,) and data.vocab_size(cfg) == 257
    assert data.num_classes(cfg) is None
    tok = data.ByteTokenizer()
    for split in ("train", "test"):
        expected = plain_rows([text.split_document(d, split) for d in documents], tok, 8)
        ds = data.build_map_dataset(dict(cfg, split=split), global_batch_size=len(expected),
                                    seed=0)
        batch = ds[0]
        assert batch["x"].dtype == np.int32 and set(batch) == {"x"}
        np.testing.assert_array_equal(batch["x"], expected)
    glob_cfg = dict(cfg, path=[str(root / "*.txt"), str(root / "sub" / "c.txt")])
    np.testing.assert_array_equal(
        data.build_map_dataset(glob_cfg, global_batch_size=4, seed=0)[2]["x"],
        data.build_map_dataset(cfg, global_batch_size=4, seed=0)[2]["x"],
    )


def test_python_docs_loads_offline(tmp_path):
    topics = text.python_docs_topics()
    assert len(topics) > 20 and sum(map(len, topics.values())) > 100_000
    cfg = dict(source="python_docs", seq_len=64, shuffle=False, cache_dir=str(tmp_path))
    first = text.split_document(topics[min(topics)], "train").encode("utf-8")
    batch = data.build_map_dataset(cfg, global_batch_size=2, seed=0)[0]["x"]
    np.testing.assert_array_equal(batch[0], np.frombuffer(first[:64], np.uint8))
    assert data.decode_tokens(cfg, batch)[0] == first[:64].decode("utf-8")
    reader = text.open_reader(data.parse_config(cfg))
    train_bytes = sum(len(text.split_document(t, "train").encode("utf-8")) + 1
                      for t in topics.values())
    assert len(reader) == train_bytes // 64 and reader.num_tokens == train_bytes
    test_reader = text.open_reader(data.parse_config(dict(cfg, split="test")))
    assert 0 < len(test_reader) < len(reader) / 5


# ------------------------------------------------------------------------------------------
# LM1B and OpenWebText on tiny TFDS datasets built here under the real names.


def _text_builder_cls(name, version, splits):
    tfds = pytest.importorskip("tensorflow_datasets")

    class TinyText(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version(version)

        def _info(self):
            features = tfds.features.FeaturesDict({"text": tfds.features.Text()})
            return tfds.core.DatasetInfo(builder=self, features=features)

        def _split_generators(self, dl_manager):
            del dl_manager
            return {split: self._generate_examples(docs) for split, docs in splits.items()}

        def _generate_examples(self, docs):
            for i, doc in enumerate(docs):
                yield i, {"text": doc}

    TinyText.name = name
    return TinyText


@pytest.fixture(scope="module")
def text_tfds_dir(tmp_path_factory):
    tfds = pytest.importorskip("tensorflow_datasets")
    data_dir = str(tmp_path_factory.mktemp("tfds_text"))
    for name, version, splits in (
        ("lm1b", "1.1.0", {"train": LM1B_TRAIN, "test": LM1B_TEST}),
        ("openwebtext", "1.0.0", {"train": OWT_DOCS}),
    ):
        builder = _text_builder_cls(name, version, splits)(
            data_dir=data_dir, file_format="array_record"
        )
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(try_download_gcs=False)
        )
    return data_dir


def tfds_documents(name, split, data_dir):
    """The documents in TFDS's stored order, read independently of flowjax."""
    import tensorflow_datasets as tfds

    source = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    return [source[i]["text"].decode("utf-8") for i in range(len(source))]


def wrapped_rows(documents, tok, seq_len, bos, eos):
    stream = []
    for d in documents:
        stream += tok.encode(d) + [eos]
    body = seq_len - 2
    n = len(stream) // body
    return np.asarray([[bos, *stream[r * body : (r + 1) * body], eos] for r in range(n)],
                      np.int32)


def test_lm1b_detokenizer():
    assert text.lm1b_detokenize("it 's a dog , not a cat !") == "it's a dog, not a cat!"
    assert text.lm1b_detokenize(
        'he said " yes " and the $ 5 deal ( again ) , at http : / / x.com ?'
    ) == 'he said "yes" and the $5 deal (again), at http://x.com?'


def test_lm1b_preparation_gives_the_exact_rows(text_tfds_dir, wordpiece_file, tmp_path):
    # With bytes (no BOS: EOS 256 opens the rows too): "it 's ok ." -> "it's ok." + EOS,
    # cut into rows of 3 and wrapped: [EOS] 3 tokens [EOS].
    cfg = dict(source="tfds_text", name="lm1b", split="test", tokenizer="bytes", seq_len=5,
               data_dir=text_tfds_dir, shuffle=False, cache_dir=str(tmp_path))
    assert data.event_shape(cfg) == (5,) and data.num_classes(cfg) is None
    rows = data.build_map_dataset(cfg, global_batch_size=3, seed=0)[0]["x"]
    e = 256
    assert rows.tolist() == [
        [e, ord("i"), ord("t"), ord("'"), e],
        [e, ord("s"), ord(" "), ord("o"), e],
        [e, ord("k"), ord("."), e, e],
    ]
    # bert-like WordPiece: [CLS] s1 [SEP] s2 [SEP] ... cut into rows of seq_len - 2, each row
    # wrapped in [CLS] ... [SEP]; the default cache goes under data_dir.
    tok = data.load_tokenizer(wordpiece_file)
    cfg = dict(source="tfds_text", name="lm1b", tokenizer=wordpiece_file, seq_len=8,
               data_dir=text_tfds_dir, shuffle=False)
    assert data.vocab_size(cfg) == tok.vocab_size
    docs = [text.lm1b_detokenize(d) for d in tfds_documents("lm1b", "train", text_tfds_dir)]
    expected = wrapped_rows(docs, tok, 8, tok.bos_id, tok.eos_id)
    assert len(expected) >= 4
    got = data.build_map_dataset(cfg, global_batch_size=len(expected), seed=0)[0]["x"]
    np.testing.assert_array_equal(got, expected)
    assert os.listdir(os.path.join(text_tfds_dir, "flowjax_text"))
    assert data.decode_tokens(cfg, got[:1])[0] == tok.decode(expected[0, 1:-1])


def test_openwebtext_preparation_and_held_out_split(text_tfds_dir, bpe_dir, tmp_path,
                                                     monkeypatch):
    monkeypatch.setattr(text, "OWT_VALIDATION_DOCUMENTS", 2)
    tok = data.load_tokenizer(bpe_dir)
    docs = tfds_documents("openwebtext", "train", text_tfds_dir)
    cfg = dict(source="tfds_text", name="openwebtext", tokenizer=bpe_dir, seq_len=16,
               data_dir=text_tfds_dir, shuffle=False, cache_dir=str(tmp_path))
    for split, part in (("train", docs[:-2]), ("validation", docs[-2:])):
        expected = wrapped_rows(part, tok, 16, tok.eos_id, tok.eos_id)
        split_cfg = dict(cfg, split=split)
        got = data.build_map_dataset(split_cfg, global_batch_size=len(expected), seed=0)[0]["x"]
        np.testing.assert_array_equal(got, expected)
        assert (got[:, 0] == tok.eos_id).all() and (got[:, -1] == tok.eos_id).all()
    monkeypatch.setattr(text, "OWT_VALIDATION_DOCUMENTS", 7)
    with pytest.raises(ValueError, match="leaves none for 'train'"):
        data.build_dataset(cfg, global_batch_size=2, seed=0)


def test_missing_tfds_text_dataset_raises_a_clear_error(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    empty = tmp_path / "empty_tfds"
    empty.mkdir()
    cfg = dict(source="tfds_text", name="lm1b", tokenizer="bytes", seq_len=128,
               data_dir=str(empty))
    with pytest.raises(ValueError, match=r"(?s)'lm1b'.*empty_tfds.*tfds build"):
        data.build_dataset(cfg, global_batch_size=8, seed=0)
    with pytest.raises(ValueError, match=r"(?s)'openwebtext' was not found.*tfds build"):
        data.build_dataset(dict(cfg, name="openwebtext"), global_batch_size=8, seed=0)


# ------------------------------------------------------------------------------------------
# Resume and process splits, the same contract as every record source.


@pytest.fixture()
def text_configs(corpus_dir, text_tfds_dir, bpe_dir, wordpiece_file, tmp_path, monkeypatch):
    monkeypatch.setattr(text, "OWT_VALIDATION_DOCUMENTS", 2)
    cache = str(tmp_path / "cache")
    return {
        "text_files": dict(source="text_files", path=str(corpus_dir[0]), seq_len=6,
                           cache_dir=cache),
        "python_docs": dict(source="python_docs", seq_len=32, cache_dir=cache),
        "lm1b": dict(source="tfds_text", name="lm1b", tokenizer=wordpiece_file, seq_len=6,
                     data_dir=text_tfds_dir, cache_dir=cache),
        "openwebtext": dict(source="tfds_text", name="openwebtext", tokenizer=bpe_dir,
                            seq_len=8, data_dir=text_tfds_dir, cache_dir=cache),
    }


@pytest.mark.parametrize("name", ["text_files", "python_docs", "lm1b", "openwebtext"])
def test_text_sources_resume_and_split_over_processes(text_configs, name):
    cfg = text_configs[name]
    it = data.build_dataset(cfg, global_batch_size=4, seed=3)
    take(it, 5)
    state = it.get_state()
    expected = take(it, 3)
    resumed = data.build_dataset(cfg, global_batch_size=4, seed=3)
    resumed.set_state(state)
    for a, b in zip(take(resumed, 3), expected, strict=True):
        assert a["x"].dtype == np.int32 and a["x"].shape == (4, cfg["seq_len"])
        np.testing.assert_array_equal(a["x"], b["x"])
    single = data.build_map_dataset(cfg, global_batch_size=4, seed=3)
    halves = [
        data.build_map_dataset(cfg, global_batch_size=4, seed=3, process_index=p,
                               process_count=2)
        for p in range(2)
    ]
    for step in (0, 3, 7):
        joined = np.concatenate([halves[0][step]["x"], halves[1][step]["x"]])
        np.testing.assert_array_equal(joined, single[step]["x"])
    # One shuffled epoch reads every row once.
    reader = text.open_reader(data.parse_config(cfg))
    n = len(reader)
    everything = reader.read(np.arange(n))["x"]
    epoch = np.concatenate([single[i]["x"] for i in range(-(-n // 4))])[:n]
    assert sorted(map(tuple, epoch.tolist())) == sorted(map(tuple, everything.tolist()))


# ------------------------------------------------------------------------------------------
# The token cache.


def test_cache_is_reused_keyed_by_tokenizer_and_written_atomically(corpus_dir, bpe_dir,
                                                                    tmp_path, monkeypatch):
    root, _ = corpus_dir
    cache = tmp_path / "cache"
    cfg = dict(source="text_files", path=str(root), seq_len=4, cache_dir=str(cache))
    first = data.build_map_dataset(cfg, global_batch_size=2, seed=0)[1]["x"]
    (path,) = cache.iterdir()
    assert path.name.startswith("text_files-train-") and path.suffix == ".npy"
    stamp = path.stat().st_mtime_ns

    def fail(*args):
        raise AssertionError("the cache should have been reused")

    with monkeypatch.context() as m:
        m.setattr(text, "_write_npy_atomically", fail)
        again = data.build_map_dataset(cfg, global_batch_size=2, seed=0)[1]["x"]
    np.testing.assert_array_equal(again, first)
    assert path.stat().st_mtime_ns == stamp
    data.build_map_dataset(dict(cfg, tokenizer=bpe_dir), global_batch_size=2, seed=0)
    data.build_map_dataset(dict(cfg, split="test"), global_batch_size=2, seed=0)
    assert len(list(cache.iterdir())) == 3  # one stream per (tokenizer, split)
    (root / "a.txt").write_text("changed\n", encoding="utf-8")
    data.build_map_dataset(cfg, global_batch_size=2, seed=0)
    assert len(list(cache.iterdir())) == 4  # the corpus changed
    # A crash while tokenizing leaves neither a cache nor a temporary file.
    (root / "a.txt").write_text("changed again\n", encoding="utf-8")

    def crash(self, texts):
        raise RuntimeError("killed")

    monkeypatch.setattr(data.ByteTokenizer, "encode_batch", crash)
    with pytest.raises(RuntimeError, match="killed"):
        data.build_map_dataset(cfg, global_batch_size=2, seed=0)
    names = sorted(p.name for p in cache.iterdir())
    assert len(names) == 4 and all(n.endswith(".npy") for n in names)


# ------------------------------------------------------------------------------------------
# Bad configs.


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (dict(source="python_docs", seq_len=8, shufle=False), r"Unknown key.*'shufle'.*allowed"),
        (dict(source="python_docs"), r"data.seq_len is required"),
        (dict(source="python_docs", seq_len=0), r"seq_len must be an int >= 1"),
        (dict(source="python_docs", seq_len="128"), r"seq_len must be an int >= 1"),
        (dict(source="python_docs", seq_len=True), r"seq_len must be an int >= 1"),
        (dict(source="tfds_text", name="lm1b", tokenizer="bytes", seq_len=2),
         r"seq_len must be an int >= 3"),
        (dict(source="python_docs", seq_len=8, split="validation"), r"not a split.*'train'"),
        (dict(source="tfds_text", name="openwebtext", tokenizer="bytes", seq_len=8,
              split="test"), r"not an OpenWebText split.*'validation'"),
        (dict(source="tfds_text", name="wikitext", tokenizer="bytes", seq_len=8),
         r"no text preparation.*'lm1b', 'openwebtext'"),
        (dict(source="text_files", path=3, seq_len=8), r"data.path must be a directory"),
        (dict(source="python_docs", seq_len=8, tokenizer=""), r"data.tokenizer must be"),
    ],
)
def test_bad_text_configs_raise_before_any_work(cfg, match):
    with pytest.raises(ValueError, match=match):
        data.parse_config(cfg)


def test_text_files_without_txt_files_and_decode_of_other_sources(tmp_path):
    cfg = dict(source="text_files", path=str(tmp_path), seq_len=8, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="holds no .txt file"):
        data.build_dataset(cfg, global_batch_size=2, seed=0)
    (tmp_path / "tiny.txt").write_text("abc", encoding="utf-8")
    with pytest.raises(ValueError, match="fewer than one row of 8"):
        data.build_dataset(cfg, global_batch_size=2, seed=0)
    with pytest.raises(ValueError, match="has no tokenizer"):
        data.decode_tokens(dict(source="toy", name="moons"), np.zeros((1, 2), np.int32))
