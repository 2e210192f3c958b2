"""Sphinx configuration of the acljax documentation: MyST pages and MyST-NB notebooks (executed at build time),
the API reference from the docstrings, the results pages generated from the results files (docs/results.py)."""

import sys
from pathlib import Path

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS))  # docs/results.py

import results  # noqa: E402

import acljax  # noqa: E402

project = "acljax"
author = "the acljax developers"
copyright = "2026, the acljax developers"
release = version = acljax.__version__

extensions = [
    "myst_nb",  # MyST Markdown pages and notebooks (executed)
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",  # the Google-style "Args:" / "Returns:" sections of the docstrings
    "sphinx.ext.mathjax",
    "sphinx_copybutton",
]
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
source_suffix = {".md": "myst-nb"}
exclude_patterns = ["_build", "jupyter_execute"]

# Every tutorial runs when the docs build (small sizes), so a page that no longer runs fails the build.
nb_execution_mode = "force"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True
nb_render_markdown_format = "gfm"  # tables that cells print as Markdown render as tables

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True  # "Attributes:" as fields of their class (NamedTuple fields are documented once)

# Every cross-reference to acljax must resolve (a broken one fails the -W build). Other libraries' objects are not
# linked (intersphinx would fetch their inventories over the network when the docs build) and are left as text.
nitpicky = True
nitpick_ignore_regex = [(r"py:.*", r"(jax|jaxlib|numpy|np|flax|optax|orbax|os|pathlib|collections|typing|matplotlib)"
                         r"(\..*)?"),
                        (r"py:class", r"acljax\..*\._\w+"),  # private base classes
                        # annotations autodoc leaves as written: an alias of optax.Params, and names imported only
                        # for type checking (both classes are in the API reference)
                        (r"py:class", r"Params|Workdir|ResumableLearner")]

html_theme = "sphinx_book_theme"
html_title = "acljax"
html_static_path = ["_static"]
html_theme_options = {"show_toc_level": 2, "use_download_button": False}
html_context = {"default_mode": "auto"}  # the theme's colour mode on a first visit (unset, its script logs an error)


def setup(app):
    app.connect("builder-inited", lambda app: results.write_pages(DOCS / "results"))
