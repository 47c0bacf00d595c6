"""The reserved token ids every sequence generator and its vocabulary share.

Translators, captioners, the WordPiece vocabularies and the caption word
lists all reserve the first four ids for these tokens, in this order, so a
model, its training data and its exported SavedModel agree on them.
"""

PAD_ID = 0  # padding; ignored by the loss and the masked accuracy
UNK_ID = 1  # a word or piece outside the vocabulary
START_ID = 2  # fed to the decoder at the first step
END_ID = 3  # finishes a generated sequence

# The vocabulary entries of the ids above (`vocabulary[PAD_ID] == "[PAD]"`).
RESERVED_TOKENS = ("[PAD]", "[UNK]", "[START]", "[END]")
