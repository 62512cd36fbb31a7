"""mkdocs hook (mkdocs.yml): the site is docs/ plus files that live elsewhere in the
repository -- README.md (as readme.md), tutorials/README.md and the notebooks (executed by
mkdocs-jupyter, or taken already executed from $PROMREF_EXECUTED_NOTEBOOKS), and the source
files the pages link to -- with the links between them, written for reading the repository
on disk, rewritten to the site's layout."""
import os
import re
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

REPO = Path(__file__).resolve().parents[1]
_LINK = re.compile(r"\]\((\.\./)?([^)#\s]+)(#[^)\s]*)?\)")


def _executed_folder():
    """$PROMREF_EXECUTED_NOTEBOOKS: a folder laid out like the repository, FOLDER/tutorials/NN_*.ipynb,
    of already executed copies of the tutorials (the test suite's own runs: tests/test_docs_site.py),
    or None: mkdocs-jupyter executes tutorials/ itself."""
    folder = os.environ.get("PROMREF_EXECUTED_NOTEBOOKS")
    return Path(folder) if folder else None


def _notebook_source(notebook):
    """The file the site's page of ``notebook`` (tutorials/NN_*.ipynb) is made from."""
    folder = _executed_folder()
    if folder is None:
        return notebook
    copy = folder / "tutorials" / notebook.name
    if not copy.is_file():
        raise PluginError(f"$PROMREF_EXECUTED_NOTEBOOKS={folder} has no executed copy of {notebook.name}")
    return copy


def on_config(config):
    if _executed_folder() is not None:   # pre-executed pages: render them, never run them again
        config.plugins["mkdocs-jupyter"].config["execute"] = False
    return config


def _extra_files():
    """{site path: file on disk} of what the site takes from outside docs/."""
    extra = {"readme.md": REPO / "README.md", "tutorials/README.md": REPO / "tutorials" / "README.md"}
    extra.update({f"tutorials/{p.name}": _notebook_source(p)
                  for p in sorted((REPO / "tutorials").glob("[0-9][0-9]_*.ipynb"))})
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for _, target, _ in _LINK.findall(page.read_text(encoding="utf-8")):
            if target.startswith("promref/") and target.endswith(".py") and (REPO / target).is_file():
                extra[target] = REPO / target     # a linked source file is shown as it is
    return extra


def _file(uri, path, config):
    """A File whose place in the site is ``uri`` and whose source is ``path``."""
    for base in (REPO, *path.parents):  # the same place relative to a folder: plugins re-derive the path
        if (base / uri) == path:         # (mkdocs-jupyter's pages must be real files of a src_dir)
            return File(uri, str(base), config["site_dir"], config["use_directory_urls"])
    return File.generated(config, uri, abs_src_path=str(path))


@event_priority(100)   # before mkdocs-jupyter's on_files, which turns the notebooks into pages
def on_files(files, config):
    for uri, path in _extra_files().items():
        files.append(_file(uri, path, config))
    return files


def _site_target(target, page_uri, up):
    """Where a link written for the repository points in the site (None: leave it)."""
    if page_uri == "readme.md":                       # README.md links as from the repository root
        if target.startswith("docs/"):
            return target[len("docs/"):]
        return "tutorials/README.md" if target.rstrip("/") == "tutorials" else None
    if up and "/" not in page_uri:                    # a docs/ page linking out of docs/: ../X
        return "readme.md" if target == "README.md" else target
    return None


def on_page_markdown(markdown, page, config, files):
    def rewrite(match):
        up, target, anchor = match.groups()
        new = None if "://" in target else _site_target(target, page.file.src_uri, up)
        return match.group(0) if new is None else f"]({new}{anchor or ''})"
    return _LINK.sub(rewrite, markdown)
