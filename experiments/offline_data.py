"""How to obtain the offline corpora that the project's builders read.

Free of TFDS imports, so that `python -m experiments list` can print the
commands at once; the builders in `experiments/datasets/` give the same
commands in their missing-data messages.
"""

import shlex

# Default TFDS manual directory (where `movie_sentences` looks first).
MANUAL_DIR = "~/tensorflow_datasets/downloads/manual"

DING_DE_EN_INSTALL_COMMAND = "apt-get install trans-de-en"


def movie_sentences_fetch_command(directory):
    """The one shell command that puts the archive in `directory`."""
    target = str(directory)
    if not target.startswith("~"):
        target = shlex.quote(target)  # `~` must stay unquoted to expand
    return (
        "python -m pip download --no-deps --no-binary :all: "
        f"vaderSentiment==3.3.2 -d {target}"
    )


# dataset -> (what it needs, the command that provides it).
PREREQUISITES = {
    "movie_sentences": (
        "the vaderSentiment 3.3.2 source archive (or --set "
        "data.archive_path=PATH)",
        movie_sentences_fetch_command(MANUAL_DIR),
    ),
    "ding_de_en": (
        "the Debian package trans-de-en (Ding dictionary)",
        DING_DE_EN_INSTALL_COMMAND,
    ),
}
