"""Exact byte-level probabilities from tokenized models (Phan et al., 2024; 2025) on a CPU.

Part "exact" (no training): the known answers of `flowjax.solvers.byte_level` on Markov chains
whose exact token-level model is enumerated. Part "trained": a byte-level BPE (`tokenizers`)
trained on text from a known order-1 Markov chain over 8 letters, and a tiny causal transformer
trained on its token stream by the flowjax trainer (`configs/bytes/markov.py`); next-byte
probabilities from plain prompting (tokens), token healing and the exact byte-level computation,
against the chain's transition table; then an ensemble of two models with different
vocabularies against each member (byte-level perplexity).

    .venv/bin/python experiments/bytes/run.py --parts exact trained --workdir /tmp/bytes_runs
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import time

import numpy as np
from flax import nnx
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from flowjax.data import HFTokenizer, MaxPrefixTokenizer
from flowjax.data.languages import MarkovLanguage
from flowjax.solvers.byte_level import (
    END,
    ByteLevelModel,
    ensemble_next_byte_log_probs,
    exact_token_model,
    logits_token_model,
    naive_next_byte_log_probs,
    token_healing_next_byte_log_probs,
)
from flowjax.train import load_config_file, train
from flowjax.train.trained import load_trained_flow

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "..", "configs", "bytes", "markov.py")
LETTERS = b"abcdefgh"
MERGES = {"small": 24, "large": 96}
"""BPE merges of the two vocabularies (on top of the 8 letters)."""


def train_bpe(
    texts: list[str], alphabet: bytes, merges: int, path: str, split_words: bool = False
) -> HFTokenizer:
    """A byte-level BPE with `merges` merges over `alphabet` and <|endoftext|> (id 0), saved at
    `path`; no pre-tokenizer split (prefixes of encodings are encodings), or GPT-2's
    (`split_words`: letters, punctuation and spaces in separate pieces)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=split_words)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1 + len(alphabet) + merges, special_tokens=["<|endoftext|>"],
        initial_alphabet=[chr(b) for b in alphabet], show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    tok.save(path)
    return HFTokenizer(path)


def enumerate_language(language: MarkovLanguage, alphabet: bytes):
    """Every text of the language (symbols written as `alphabet` bytes) and its probability."""
    seqs = np.asarray(list(itertools.product(range(language.vocab_size), repeat=language.seq_len)))
    probs = np.exp(language.log_prob(seqs))
    return [bytes(alphabet[s] for s in seq) for seq in seqs], probs


def enumerated_next(texts, probs, prefix: bytes, alphabet: bytes) -> dict[int, float]:
    """P(next byte | prefix) by summing the enumerated texts (END after a whole text)."""
    here = sum(p for t, p in zip(texts, probs) if t.startswith(prefix))
    if len(prefix) == len(texts[0]):
        return {END: 1.0}
    return {b: sum(p for t, p in zip(texts, probs) if t.startswith(prefix + bytes([b]))) / here
            for b in alphabet}


# Part "exact" --------------------------------------------------------------------------------


def run_exact(workdir: str) -> dict:
    rows = {}
    # The two-state chain of paper 1 (section 3): {A, B}, vocabulary {A, B, AA}, maximum prefix.
    table = {(65, 65): 0.7, (65, 66): 0.3, (66, 65): 0.4, (66, 66): 0.6}
    texts = [bytes(t) for t in itertools.product(b"AB", repeat=8)]
    probs = np.array([0.5 * np.prod([table[(a, b)] for a, b in zip(t, t[1:])]) for t in texts])
    mpe = MaxPrefixTokenizer(["A", "B", "AA"])
    lm = ByteLevelModel(exact_token_model(texts, probs, mpe), mpe)
    rows["two-state chain, P(x2 = A | x1 = A) (truth 0.7)"] = {
        "plain prompt (tokens)": float(np.exp(naive_next_byte_log_probs(lm, b"A")[65])),
        "token healing": float(np.exp(token_healing_next_byte_log_probs(lm, b"A")[65])),
        "byte-level (lemma)": float(np.exp(lm.next_byte_log_probs(lm.prefix(b"A"))[65])),
    }
    # A third-order binary chain, texts of 8 bytes, two vocabularies: every prefix's next bytes.
    language = MarkovLanguage(vocab_size=2, seq_len=8, order=3, concentration=1.0, language_seed=3)
    texts, probs = enumerate_language(language, b"01")
    top = [texts[i].decode() for i in np.argsort(-probs)[:64]] * 8
    tokenizers = {
        "maximum prefix (8 tokens, up to 4 bytes)": MaxPrefixTokenizer(
            ["0", "1", "00", "01", "11", "000", "0110", "1111"]),
        "BPE (12 merges, tokenizers)": train_bpe(top, b"01", 12, os.path.join(workdir, "bpe.json")),
    }
    for name, tokenizer in tokenizers.items():
        lm = ByteLevelModel(exact_token_model(texts, probs, tokenizer), tokenizer)
        worst_lemma = worst_naive = 0.0
        for n in range(language.seq_len + 1):
            for prefix in itertools.product(b"01", repeat=n):
                prefix = bytes(prefix)
                truth = enumerated_next(texts, probs, prefix, b"01")
                exact = np.exp(lm.next_byte_log_probs(lm.prefix(prefix)))
                naive = np.exp(naive_next_byte_log_probs(lm, prefix))
                worst_lemma = max(worst_lemma, *(abs(exact[b] - p) for b, p in truth.items()))
                worst_naive = max(worst_naive, *(abs(naive[b] - p) for b, p in truth.items()))
        text = texts[int(np.argmax(probs))]
        chain = lm.byte_log_likelihoods(text).sum()
        rows[f"third-order chain, {name}"] = {
            "max |next-byte error|, byte-level": worst_lemma,
            "max |next-byte error|, plain prompt": worst_naive,
            "|chain rule - lemma| on the likeliest text": abs(chain - lm.log_prob(text)),
            "|lemma - truth| on it": abs(lm.log_prob(text) - np.log(probs.max())),
        }
    return rows


# Part "trained" ------------------------------------------------------------------------------


def load_model(config, workdir: str, tokenizer: HFTokenizer) -> ByteLevelModel:
    flow = load_trained_flow(config, workdir)
    model = nnx.merge(flow.run.graphdef, flow.state.ema_params, flow.state.model_state)
    vocab = tokenizer.vocab_size  # the network's extra id `vocab` is the BOS of every row

    def apply(tokens):
        return model(tokens)[..., :vocab]

    return ByteLevelModel(
        logits_token_model(apply, max_length=config.data.seq_len), tokenizer, context=(vocab,)
    )


def train_on(documents: list[str], tokenizer: HFTokenizer, workdir: str, name: str,
             num_updates: int | None) -> tuple[ByteLevelModel, float]:
    """configs/bytes/markov.py trained on `documents` (one .txt file each) with `tokenizer`;
    the trained model as a `ByteLevelModel` and the training time."""
    corpus = os.path.join(workdir, f"corpus_{name}")
    os.makedirs(corpus, exist_ok=True)
    for i, doc in enumerate(documents):
        with open(os.path.join(corpus, f"doc{i:04d}.txt"), "w") as f:
            f.write(doc)
    config = load_config_file(CONFIG)
    config.data.update(path=corpus, tokenizer=tokenizer.path,
                       cache_dir=os.path.join(workdir, "cache"))
    if num_updates:
        config.train.num_steps = num_updates
    run_dir = os.path.join(workdir, name)
    start = time.time()
    train(config, run_dir)
    return load_model(config, run_dir, tokenizer), time.time() - start


def next_byte_errors(truth: np.ndarray, log_probs: np.ndarray, actual: int) -> dict:
    """Total variation to the true next-letter distribution, KL(truth || model) and the model's
    log-loss of the byte that came."""
    p = np.exp(log_probs)
    q = np.zeros(257)
    q[list(LETTERS)] = truth
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = float(np.sum(np.where(q > 0, q * (np.log(q) - log_probs), 0.0)))
    return {"tv": 0.5 * float(np.abs(p - q).sum()), "kl": kl, "nll": -float(log_probs[actual])}


def run_trained(workdir: str, num_updates: int | None) -> dict:
    language = MarkovLanguage(vocab_size=8, seq_len=1_000, order=1, concentration=0.3,
                              language_seed=1)
    rng = np.random.default_rng(0)
    documents = [bytes(LETTERS[s] for s in row).decode() for row in language.sample(rng, 4_000)]
    held_out = [bytes(LETTERS[s] for s in row)[:96] for row in
                language.sample(np.random.default_rng(1), 12)]
    transitions = language.transitions
    stationary = language.stationary

    members, result = {}, {"language": {
        "letters": 8, "order": 1, "concentration": 0.3,
        "entropy_rate_nats": language.entropy_rate,
        "byte_perplexity_floor": float(np.exp(language.entropy_rate)),
    }}
    for vocabulary in ("small", "large"):
        merges = MERGES[vocabulary]
        path = os.path.join(workdir, f"tokenizer_{vocabulary}.json")
        tokenizer = train_bpe(documents, LETTERS, merges, path)
        lm, seconds = train_on(documents, tokenizer, workdir, vocabulary, num_updates)
        sizes = [len(tokenizer.token_bytes[i]) for i in lm.order]
        per_method = {m: [] for m in ("plain prompt", "token healing", "byte-level",
                                      "byte-level, no validity check")}
        fast = ByteLevelModel(lm.model, tokenizer, context=lm.context, check_validity=False)
        calls = 0
        for doc in held_out:
            state, fast_state = lm.prefix(b""), fast.prefix(b"")
            for k in range(1, len(doc)):
                state = lm.advance(state, doc[k - 1])
                fast_state = fast.advance(fast_state, doc[k - 1])
                prompt, actual = doc[:k], doc[k]
                truth = transitions[LETTERS.index(doc[k - 1])]
                per_method["byte-level"].append(
                    next_byte_errors(truth, lm.next_byte_log_probs(state), actual))
                per_method["byte-level, no validity check"].append(
                    next_byte_errors(truth, fast.next_byte_log_probs(fast_state), actual))
                per_method["plain prompt"].append(
                    next_byte_errors(truth, naive_next_byte_log_probs(lm, prompt), actual))
                per_method["token healing"].append(
                    next_byte_errors(truth, token_healing_next_byte_log_probs(lm, prompt), actual))
            calls += state.calls
        truth_nll = np.mean([-np.log(transitions[LETTERS.index(d[k - 1]), LETTERS.index(d[k])])
                             for d in held_out for k in range(1, len(d))])
        result[vocabulary] = {
            "merges": merges, "vocab_size": tokenizer.vocab_size, "longest_token": max(sizes),
            "train_seconds": seconds, "updates": num_updates or 2_000,
            "model_calls_per_byte": calls / sum(len(d) for d in held_out),
            "true_nll": float(truth_nll),
            "methods": {m: {k: float(np.mean([r[k] for r in rows])) for k in ("tv", "kl", "nll")}
                        for m, rows in per_method.items()},
        }
        members[vocabulary] = lm
        print(json.dumps(result[vocabulary], indent=1), flush=True)

    # The ensemble: byte-level perplexity of the held-out texts (all bytes, the first after BOS).
    lms = list(members.values())
    nll = {"small": [], "large": [], "ensemble": [], "truth": []}
    for doc in held_out:
        states = [m.prefix(b"") for m in lms]
        for k, byte in enumerate(doc):
            each = [m.next_byte_log_probs(s) for m, s in zip(lms, states)]
            nll["small"].append(-each[0][byte])
            nll["large"].append(-each[1][byte])
            nll["ensemble"].append(-ensemble_next_byte_log_probs(lms, states)[byte])
            row = stationary if k == 0 else transitions[LETTERS.index(doc[k - 1])]
            nll["truth"].append(-np.log(row[LETTERS.index(byte)]))
            states = [m.advance(s, byte) for m, s in zip(lms, states)]
    result["ensemble_byte_perplexity"] = {k: float(np.exp(np.mean(v))) for k, v in nll.items()}
    print(json.dumps(result["ensemble_byte_perplexity"], indent=1), flush=True)
    return result


# Part "fim" ----------------------------------------------------------------------------------

FIM = (16, 1, 16)
"""Bytes of the prefix, the middle and the suffix of each fill-in-the-middle example."""
FIM_UPDATES = 6_000
"""Updates of the FIM model (at 2,000 it has not yet learned to read the suffix)."""


def run_fim(workdir: str, num_updates: int | None) -> dict:
    """Fill-in-the-middle in the suffix-prefix-middle order: "<" suffix ">" prefix middle "."
    (the sentinels are punctuation, which GPT-2's pre-tokenizer keeps apart from letters). The
    prompt "<" suffix ">" prefix ends where the middle starts, inside a token of the training
    text (prefix and middle are one run of letters). The first byte of the middle has a known
    answer, the chain's bridge: P(b | prefix ending in a, suffix starting with c) is
    proportional to T[a, b] (T^m)[b, c], m = the middle's length."""
    language = MarkovLanguage(vocab_size=8, seq_len=sum(FIM), order=1, concentration=0.3,
                              language_seed=1)
    n_pre, n_mid, _ = FIM

    def example(row) -> tuple[bytes, bytes, bytes]:
        text = bytes(LETTERS[s] for s in row)
        return text[:n_pre], text[n_pre : n_pre + n_mid], text[n_pre + n_mid :]

    def spm(pre, mid, suf) -> str:
        return f"<{suf.decode()}>{pre.decode()}{mid.decode()}."

    rows = language.sample(np.random.default_rng(2), 64_000).reshape(400, 160, -1)
    documents = ["".join(spm(*example(r)) for r in doc) for doc in rows]
    tokenizer = train_bpe(documents, LETTERS + b"<>.", MERGES["large"],
                          os.path.join(workdir, "tokenizer_fim.json"), split_words=True)
    updates = num_updates or FIM_UPDATES
    trained, seconds = train_on(documents, tokenizer, workdir, "fim", updates)
    bridge = np.linalg.matrix_power(language.transitions, n_mid)
    per_method = {m: [] for m in ("plain prompt", "token healing", "byte-level",
                                  "the chain without the suffix (exact)")}
    calls, truth_nll = 0, []
    for row in language.sample(np.random.default_rng(3), 300):
        pre, mid, suf = example(row)
        context = trained.context + tuple(tokenizer.encode(f"<{suf.decode()}>"))
        lm = dataclasses.replace(trained, context=context)
        a, c = LETTERS.index(pre[-1]), LETTERS.index(suf[0])
        truth = language.transitions[a] * bridge[:, c]
        truth /= truth.sum()
        state = lm.prefix(pre)
        calls += state.calls
        for method, log_probs in (
            ("plain prompt", naive_next_byte_log_probs(lm, pre)),
            ("token healing", token_healing_next_byte_log_probs(lm, pre)),
            ("byte-level", lm.next_byte_log_probs(state)),
        ):
            per_method[method].append(next_byte_errors(truth, log_probs, mid[0]))
        no_suffix = np.full(257, -np.inf)
        no_suffix[list(LETTERS)] = np.log(language.transitions[a])
        per_method["the chain without the suffix (exact)"].append(
            next_byte_errors(truth, no_suffix, mid[0]))
        truth_nll.append(-np.log(truth[LETTERS.index(mid[0])]))
    return {
        "layout": dict(zip(("prefix", "middle", "suffix"), FIM)),
        "vocab_size": tokenizer.vocab_size, "train_seconds": seconds,
        "updates": updates, "prompts": 300, "calls_per_prompt": calls / 300,
        "true_nll": float(np.mean(truth_nll)),
        "methods": {m: {k: float(np.mean([r[k] for r in rows])) for k in ("tv", "kl", "nll")}
                    for m, rows in per_method.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["exact", "trained", "fim"],
                        choices=["exact", "trained", "fim"])
    parser.add_argument("--workdir", default="/tmp/bytes_runs")
    parser.add_argument("--updates", type=int, default=None, help="override the updates")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    results_dir = os.path.join(HERE, "results")
    os.makedirs(results_dir, exist_ok=True)
    for part in args.parts:
        start = time.time()
        if part == "exact":
            result = run_exact(args.workdir)
        else:
            result = {"trained": run_trained, "fim": run_fim}[part](args.workdir, args.updates)
        command = "python experiments/bytes/run.py --parts " + part + (
            f" --updates {args.updates}" if args.updates else "")
        result = {"command": command, "seconds":
                  time.time() - start, "load": os.getloadavg()[0], "results": result}
        with open(os.path.join(results_dir, f"{part}.json"), "w") as f:
            json.dump(result, f, indent=1, default=float)
        print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
