"""minir1: DeepSeek's claims, tested in miniature.

One module per concept (see the README's tree).  Importing the package only quiets a
warning that tqdm prints inside notebooks when ipywidgets is absent: the book uses plain
text progress bars on purpose.
"""

import warnings as _warnings

_warnings.filterwarnings("ignore", message="IProgress not found")

__version__ = "0.1.0"
