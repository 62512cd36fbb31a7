"""The documentation site: ``mkdocs build --strict`` (warnings are errors) builds docs/, the
API reference from the docstrings (mkdocstrings) and the five tutorials with their outputs
(mkdocs-jupyter); a real headless browser (Debian's chromium, driven by selenium through
chromedriver) then opens the built pages and checks that every tutorial shows its figures
-- img elements whose images loaded with a non-zero size -- and that the API page documents
promref.infer.

The tutorial pages are the executions tests/test_tutorials.py checks (the session fixture
``executed_tutorials`` of conftest.py runs each notebook once, most of the time notebook 4's
training), written to a temporary folder that tools/mkdocs_hooks.py uses instead of
tutorials/ ($PROMREF_EXECUTED_NOTEBOOKS), so the build renders them without executing
anything again.  ``mkdocs build`` alone still executes them, as mkdocs.yml says.  Skipped,
with the reason, without the ``docs`` extra or without chromium and chromedriver (.ci/run
installs both).
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TUTORIALS = sorted(p.stem for p in (REPO / "tutorials").glob("[0-9][0-9]_*.ipynb"))


def _browser_binaries():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return chromium, driver


def _executed_copies(executed_tutorials, folder):
    """Write the executed tutorials (tests/test_tutorials.py's runs, answer keys removed) into
    ``folder``/tutorials/, the layout tools/mkdocs_hooks.py reads ($PROMREF_EXECUTED_NOTEBOOKS)."""
    import nbformat
    (folder / "tutorials").mkdir(parents=True)
    for name in TUTORIALS:
        run = executed_tutorials(name)
        if run.skip:
            pytest.skip(f"the site shows every tutorial executed, and {name} cannot run here: {run.skip}")
        if run.error is not None:
            pytest.fail(f"{name}.ipynb failed to execute (tests/test_tutorials.py says why): {run.error}"[:2000])
        nbformat.write(run.page(), str(folder / "tutorials" / f"{name}.ipynb"))
    return folder


@pytest.fixture(scope="session")
def site(tmp_path_factory, executed_tutorials):
    for module in ("mkdocs", "mkdocstrings", "mkdocs_jupyter", "material"):
        pytest.importorskip(module, reason=f"needs {module} (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    notebooks = _executed_copies(executed_tutorials, tmp_path_factory.mktemp("executed"))
    # tools/mkdocs_hooks.py takes the tutorial pages from there and mkdocs-jupyter only renders them
    env = dict(os.environ, PROMREF_EXECUTED_NOTEBOOKS=str(notebooks), NO_MKDOCS_2_WARNING="1",
               PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p))
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return out


@pytest.fixture(scope="session")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[docs]')")
    chromium, driver = _browser_binaries()
    if not (chromium and driver):
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver; .ci/run does)")
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1280,900"):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(driver), options=options)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def _open(browser, path):
    assert path.is_file(), path
    browser.get(path.as_uri())
    browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        Promise.all(Array.from(document.images).map(img => img.complete ? null :
            new Promise(r => { img.onload = img.onerror = r; }))).then(() => done());""")


def test_site_has_every_page(site):
    for page in ("index.html", "readme.html", "spec.html", "api.html", "tutorials/index.html"):
        assert (site / page).is_file(), page
    for name in TUTORIALS:
        assert (site / "tutorials" / f"{name}.html").is_file(), name


@pytest.mark.parametrize("name", TUTORIALS)
def test_tutorial_page_shows_its_figures(site, browser, name):
    _open(browser, site / "tutorials" / f"{name}.html")
    images = browser.execute_script("""
        return Array.from(document.images).map(img => ({src: img.src.slice(0, 40), loaded: img.complete,
            natural: img.naturalWidth * img.naturalHeight, shown: img.getBoundingClientRect().width}));""")
    figures = [i for i in images if i["src"].startswith("data:image/png")]
    assert figures, f"{name}: no figure on the page ({images})"
    for figure in figures:
        assert figure["loaded"] and figure["natural"] > 0 and figure["shown"] > 0, (name, figure)
    text = browser.find_element("tag name", "body").text
    assert "Traceback" not in text and "Error" not in text.split("\n")[0], name


def test_api_page_documents_infer(site, browser):
    _open(browser, site / "api.html")
    heading = browser.execute_script("const e = document.getElementById('promref.infer');"
                                     "return e ? e.textContent : null;")
    assert heading and "infer" in heading, heading
    body = browser.find_element("tag name", "body").text
    assert "registered model name" in body      # promref.infer's own docstring, rendered
