"""IMDB (the book's chapter 1-3): raw review text in, P(positive) out.

Cleaning, the 10000-token vocabulary (one tf.Transform analyzer over the whole training split) and the mapping to
200 token ids all live in the Transform graph, so the served model takes the raw text a client sends."""

from __future__ import annotations

import re
import string

import tensorflow as tf
import tensorflow_transform as tft

TEXT_KEY = "text"
LABEL_KEY = "label"
TOKENS_FEATURE = "tokens"
VOCAB_SIZE = 10000  # the most frequent tokens kept
MAX_LEN = 200  # ids per review: the first 200 tokens, padded at the end
PAD_ID, OOV_ID = 0, 1  # vocabulary token i gets id i + 2
VOCAB_FILENAME = "imdb_tokens"
_PUNCTUATION = "[%s]" % re.escape(string.punctuation)


def clean(text: tf.Tensor) -> tf.Tensor:
    """The book's cleaning: lower-case, `<br />` to a space, punctuation removed."""
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, "<br />", " ")
    return tf.strings.regex_replace(text, _PUNCTUATION, "")


def tokenize(text: tf.Tensor) -> tf.RaggedTensor:
    return tf.strings.split(clean(text))


def ids_from_tokens(tokens: tf.RaggedTensor, vocabulary) -> tf.Tensor:
    """[batch, MAX_LEN] int64: vocabulary ids shifted past PAD and OOV, unknown tokens -> OOV_ID, then padding."""
    kept = tokens[:, :MAX_LEN].to_sparse()
    looked_up = tft.apply_vocabulary(kept, vocabulary, default_value=-1)
    values = tf.where(looked_up.values < 0, tf.constant(OOV_ID, tf.int64), looked_up.values + 2)
    sparse = tf.SparseTensor(looked_up.indices, values, looked_up.dense_shape)
    batch = tf.shape(tokens.row_lengths(), out_type=tf.int64)[0]
    padded = tf.sparse.to_dense(tf.sparse.reset_shape(sparse, tf.stack([batch, MAX_LEN])), default_value=PAD_ID)
    return tf.reshape(padded, [-1, MAX_LEN])


def preprocessing_fn(inputs):
    tokens = tokenize(tf.reshape(inputs[TEXT_KEY], [-1]))
    vocabulary = tft.vocabulary(tokens.to_sparse(), top_k=VOCAB_SIZE, vocab_filename=VOCAB_FILENAME)
    return {TOKENS_FEATURE: ids_from_tokens(tokens, vocabulary), LABEL_KEY: inputs[LABEL_KEY]}
