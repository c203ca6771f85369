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


def train_bpe(texts: list[str], alphabet: bytes, merges: int, path: str) -> HFTokenizer:
    """A byte-level BPE with `merges` merges over `alphabet` (no pre-tokenizer split, so that
    prefixes of encodings are encodings) and <|endoftext|> (id 0), saved at `path`."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
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
    corpus = os.path.join(workdir, "corpus")
    os.makedirs(corpus, exist_ok=True)
    documents = [bytes(LETTERS[s] for s in row).decode() for row in language.sample(rng, 4_000)]
    for i, doc in enumerate(documents):
        with open(os.path.join(corpus, f"doc{i:03d}.txt"), "w") as f:
            f.write(doc)
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
        config = load_config_file(CONFIG)
        merges = MERGES[vocabulary]
        path = os.path.join(workdir, f"tokenizer_{vocabulary}.json")
        tokenizer = train_bpe(documents, LETTERS, merges, path)
        config.data.path = corpus
        config.data.tokenizer = path
        config.data.cache_dir = os.path.join(workdir, "cache")
        if num_updates:
            config.train.num_steps = num_updates
        run_dir = os.path.join(workdir, vocabulary)
        start = time.time()
        train(config, run_dir)
        seconds = time.time() - start
        lm = load_model(config, run_dir, tokenizer)
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
            "train_seconds": seconds, "updates": config.train.num_steps,
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["exact", "trained"])
    parser.add_argument("--workdir", default="/tmp/bytes_runs")
    parser.add_argument("--updates", type=int, default=None, help="override the updates")
    args = parser.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    results_dir = os.path.join(HERE, "results")
    os.makedirs(results_dir, exist_ok=True)
    for part in args.parts:
        start = time.time()
        result = run_exact(args.workdir) if part == "exact" else run_trained(args.workdir, args.updates)
        result = {"command": "python experiments/bytes/run.py --parts " + part, "seconds":
                  time.time() - start, "load": os.getloadavg()[0], "results": result}
        with open(os.path.join(results_dir, f"{part}.json"), "w") as f:
            json.dump(result, f, indent=1, default=float)
        print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()
